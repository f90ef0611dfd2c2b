#[discoverable::discoverable(name = "cool_app")]
struct Config {
    port: u16,
}

fn main() {
    let _ = Config { port: 3000 }.port;
}
