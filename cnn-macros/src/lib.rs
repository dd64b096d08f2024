use proc_macro::TokenStream; #[proc_macro] pub fn cnn(_i: TokenStream) -> TokenStream { TokenStream::new() }
