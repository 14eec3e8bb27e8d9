//! tcp_proxy tests over real loopback sockets.
