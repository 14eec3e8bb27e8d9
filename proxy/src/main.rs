//! `baton` (being assembled: the server loop lands once the config loader and the HTTP
//! connection manager are in).

fn main() {
    println!("{}", baton_proxy::server::version_line());
}
