//! The `#[discoverable]` attribute.
use proc_macro::TokenStream;

/// Makes an async function's axum service discoverable through Consul.
#[proc_macro_attribute]
pub fn discoverable(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
