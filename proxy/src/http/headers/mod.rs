//! Header handling on the request path: hop-by-hop removal, Envoy's forwarding headers
//! (`x-forwarded-*`, `x-request-id`, `x-envoy-*`, `via`, `server`) and configured
//! header mutations; response values copied out of upstream buffers for HTTP/2.

pub mod compact;
pub mod date;
pub mod forwarding;
pub mod hop_by_hop;
pub mod mutation;
pub mod repeated;
pub mod xfcc;
