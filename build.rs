//! Links rt's hot functions first (link/hot-text.ld, made by bench/hot-text.py): a call then maps
//! little more of the binary than the code it runs (see README, Benchmark).

fn main() {
    println!("cargo:rerun-if-changed=link/hot-text.ld");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("link/hot-text.ld");
    // INSERT in the script adds to the linker's default layout instead of replacing it.
    println!("cargo:rustc-link-arg-bin=rt=-Wl,-T,{}", script.display());
}
