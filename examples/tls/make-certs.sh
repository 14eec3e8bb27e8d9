#!/bin/sh
# Test certificates for tls.yaml: a CA, two server certificates and a client certificate.
set -eu
cd "$(dirname "$0")" && mkdir -p certs && cd certs
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
  -subj "/CN=Example CA" -keyout ca.key -out ca.pem
leaf() { # name cn san
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$1.key" -out "$1.csr"
  printf 'subjectAltName=%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
leaf api api.example.com DNS:api.example.com
leaf wild wildcard.example.com 'DNS:*.example.com'
leaf client client URI:spiffe://example.com/client
