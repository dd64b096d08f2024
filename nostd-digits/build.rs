//! Decompresses the MNIST test digits (`data/mnist/t10k-*-idx*-ubyte.gz`) into `OUT_DIR`, where
//! the program embeds them as IDX files.

use std::io::Read;
use std::path::Path;

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist");
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let source = data.join(format!("{name}.gz"));
        println!("cargo::rerun-if-changed={}", source.display());
        let file = std::fs::File::open(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        std::fs::write(Path::new(&out).join(name), bytes).expect("OUT_DIR is writable");
    }
}
