#[discoverable::discoverable(name = "cool_app")]
fn serve_app() {}

fn main() {
    serve_app();
}
