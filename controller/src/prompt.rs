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
    fn has_the_requested_word_count() {
        assert_eq!(super::synthetic(128).split_whitespace().count(), 128);
        assert_eq!(super::synthetic(1), "the");
    }
}
