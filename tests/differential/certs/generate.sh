#!/bin/sh
# Makes the test-only certificates of the differential area `tls` (run once; the files are
# committed so that recording on Envoy and comparing Baton see the same certificates).
# Leaves are valid for 100 years, except client-expired (2020 to 2021). Needs OpenSSL 3.
set -eu
cd "$(dirname "$0")"
days=36500
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key"; }
ca() { # name cn
  ec "$1"
  openssl req -x509 -new -key "$1.key" -subj "/O=Baton Test/CN=$2" -days $days -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # name cn san issuer usage [extra openssl x509 args]
  name=$1 cn=$2 san=$3 issuer=$4 usage=$5; shift 5
  openssl req -new -key "$name.key" -subj "/O=Baton Test/CN=$cn" -out "$name.csr"
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=%s\nextendedKeyUsage=%s\n' "$san" "$usage" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -set_serial "0x$(openssl rand -hex 8)" \
    -extfile "$name.ext" -out "$name.pem" "$@"
  rm -f "$name.csr" "$name.ext"
}
ca ca "Differential CA"
ca other-ca "Other CA"
ec www-ecdsa; leaf www-ecdsa www-ecdsa "DNS:www.example.com" ca serverAuth -days $days
rsa www-rsa; leaf www-rsa www-rsa "DNS:www.example.com" ca serverAuth -days $days
ec wild; leaf wild wild "DNS:*.wild.example.com" ca serverAuth -days $days
ec default; leaf default default "DNS:default.example.com,URI:spiffe://example.com/server" ca serverAuth -days $days
ec upstream; leaf upstream upstream "DNS:upstream.example.com" ca serverAuth -days $days
ec client; leaf client client "URI:spiffe://example.com/client,DNS:client.example.com" ca clientAuth -days $days
ec client-other; leaf client-other client-other "URI:spiffe://example.com/other,DNS:other.example.com" ca clientAuth -days $days
ec client-untrusted; leaf client-untrusted client-untrusted "URI:spiffe://example.com/client" other-ca clientAuth -days $days
# Expired: signed through `openssl ca`, which takes explicit dates.
ec client-expired
openssl req -new -key client-expired.key -subj "/O=Baton Test/CN=client-expired" -out client-expired.csr
tmp=$(mktemp -d)
touch "$tmp/index.txt"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = p
copy_extensions = none
[p]
organizationName = supplied
commonName = supplied
[ext]
basicConstraints = CA:FALSE
subjectAltName = URI:spiffe://example.com/client
extendedKeyUsage = clientAuth
CNF
openssl rand -hex 8 > "$tmp/serial"
openssl ca -batch -config "$tmp/ca.cnf" -cert ca.pem -keyfile ca.key -in client-expired.csr \
  -startdate 20200101000000Z -enddate 20210101000000Z -extensions ext -notext -out client-expired.pem
rm -rf "$tmp" client-expired.csr
