//! A short run of every fuzz target on stable Rust: the committed corpus, then mutations of it.

use std::path::Path;

/// Mutations per target in the test command (the documented libFuzzer runs do millions).
const MUTATIONS: u64 = 3_000;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("a corpus per target").flatten().map(|e| e.path()).collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).expect("a corpus file")).collect()
}

#[test]
fn every_target_survives_its_corpus_and_mutations_of_it() {
    for (name, target) in gitbacked_fuzz::TARGETS {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "{name} has a corpus");
        for seed in &seeds {
            target(seed);
        }
        for i in 0..MUTATIONS {
            let input = &seeds[(i as usize) % seeds.len()];
            let other = &seeds[(i as usize * 7 + 3) % seeds.len()];
            target(&gitbacked_fuzz::mutate(input, other, i.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1));
        }
    }
}
