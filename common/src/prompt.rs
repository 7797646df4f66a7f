//! Synthetic prompts of a requested token length.
//!
//! Without a tokenizer the prompt is built from common English words that
//! are one token each in the BPE vocabularies of current models (with their
//! leading space), so N words ≈ N prompt tokens. The server's own
//! `usage.prompt_tokens` is reported next to the estimate, so any error is
//! visible.

const WORDS: [&str; 32] = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their",
];

/// Append `n` words chosen by a seeded stream to `out` (space-separated, with a
/// leading space when `out` is not empty). Different seeds give different
/// texts from the first word on, so distinct prompts share no prefix.
pub fn push_words(out: &mut String, n: u32, seed: u64) {
    push_words_from(out, n, seed, &WORDS);
}

/// [`push_words`] from the given words (the built-in list when empty).
pub fn push_words_from<S: AsRef<str>>(out: &mut String, n: u32, seed: u64, words: &[S]) {
    if words.is_empty() {
        return push_words(out, n, seed);
    }
    let mut x = seed;
    for _ in 0..n {
        // SplitMix64: cheap, well mixed, reproducible.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(words[(z % words.len() as u64) as usize].as_ref());
    }
}

/// A prompt of `tokens` words from `words` (the built-in list when empty).
pub fn synthetic_from(tokens: u32, words: &[String]) -> String {
    if words.is_empty() {
        return synthetic(tokens);
    }
    let mut s = String::with_capacity(tokens as usize * 6);
    push_words_from(&mut s, tokens, 0x5EED, words);
    s
}

/// A prompt of `tokens` words.
pub fn synthetic(tokens: u32) -> String {
    let mut s = String::with_capacity(tokens as usize * 4);
    for i in 0..tokens as usize {
        if i > 0 {
            s.push(' ');
        }
        // A stride co-prime with the list length varies the text.
        s.push_str(WORDS[(i * 7 + i / WORDS.len()) % WORDS.len()]);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeded_words_are_reproducible_and_distinct() {
        let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
        super::push_words(&mut a, 50, 1);
        super::push_words(&mut b, 50, 1);
        super::push_words(&mut c, 50, 2);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.split_whitespace().count(), 50);
    }

    #[test]
    fn has_the_requested_word_count() {
        assert_eq!(super::synthetic(128).split_whitespace().count(), 128);
        assert_eq!(super::synthetic(1), "the");
    }
}
