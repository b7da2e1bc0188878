//! Writes a random llama2.c model and tokenizer: `random_model DIR dim hidden layers heads kv_heads vocab seq_len [seed]`.
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n = |i: usize| a[i].parse::<usize>().expect("a number");
    let config = etch_compiler::Config {
        dim: n(2),
        hidden_dim: n(3),
        n_layers: n(4),
        n_heads: n(5),
        n_kv_heads: n(6),
        vocab_size: n(7),
        seq_len: n(8),
        shared_classifier: true,
    };
    let seed = a.get(9).map_or(1, |s| s.parse().expect("seed"));
    std::fs::create_dir_all(&a[1]).expect("dir");
    etch_compiler::synthetic::write_random_model(std::path::Path::new(&a[1]), &config, seed)
        .expect("write");
}
