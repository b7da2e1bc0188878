//! The tokenizer: run.c's encodings of known prompts, its decode rules, and round trips
//! of arbitrary UTF-8.

mod common;

use common::stories_tokenizer;
use etch_compiler::synthetic::random_tokenizer;
use etch_compiler::{Tokenizer, BOS, EOS};
use proptest::prelude::*;

fn tok512() -> Tokenizer {
    Tokenizer::open(stories_tokenizer(), 512).unwrap()
}

#[test]
fn encodes_prompts_as_run_c_does() {
    let t = tok512();
    assert_eq!(t.encode("Once upon a time"), vec![1, 403, 407, 261, 378]);
    assert_eq!(t.encode(""), vec![BOS], "no dummy prefix for empty text");
    assert_eq!(t.encode_with("", true, true), vec![BOS, EOS]);
    // A character outside the vocabulary falls back to its UTF-8 bytes (id = byte + 3).
    let ids = t.encode("日");
    assert!(t.piece(ids[1]).unwrap() == b" ", "the dummy prefix");
    assert_eq!(&ids[2..], &[0xE6 + 3, 0x97 + 3, 0xA5 + 3]);
}

#[test]
fn decode_strips_the_space_after_bos_and_prints_byte_pieces() {
    let t = tok512();
    assert_eq!(t.piece(403).unwrap(), b" Once");
    assert_eq!(t.decode(BOS, 403), b"Once");
    assert_eq!(t.decode(400, 403), b" Once");
    // <0x0A> is a newline byte: printed. <0x01> is unprintable: dropped by safe_printf,
    // but kept by the raw decoder.
    assert_eq!(t.piece(0x0A + 3).unwrap(), b"<0x0A>");
    assert_eq!(t.decode(400, 0x0A + 3), b"\n");
    assert_eq!(t.decode(400, 0x01 + 3), b"");
    assert_eq!(t.piece_bytes(400, 0x01 + 3), &[0x01]);
    assert_eq!(
        t.decode(400, 0xC3 + 3),
        b"",
        "a lone UTF-8 lead byte is not printed"
    );
    assert_eq!(t.decode(400, 3), b"", "the NUL byte prints nothing");
}

#[test]
fn merges_prefer_the_best_score_then_the_leftmost_pair() {
    // vocab: specials, bytes, then "a", "b", " ", "ab" (score -1), "ba" (score -1).
    let mut pieces: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    pieces.extend((0..=255u8).map(|b| format!("<0x{b:02X}>").into_bytes()));
    let base = pieces.len() as u32;
    for p in [&b"a"[..], b"b", b" ", b"ab", b"ba", b" a"] {
        pieces.push(p.to_vec());
    }
    let mut scores = vec![0.0f32; pieces.len()];
    let n = scores.len();
    scores[n - 3] = -1.0; // ab
    scores[n - 2] = -1.0; // ba
    scores[n - 1] = -5.0; // " a"
    let bytes = Tokenizer::to_bytes(&pieces, &scores);
    let t = Tokenizer::parse(&bytes, pieces.len(), std::path::Path::new("t")).unwrap();
    let (a, b, sp, ab, ba, spa) = (base, base + 1, base + 2, base + 3, base + 4, base + 5);
    // " aba": pairs " a"(-5) ab(-1) ba(-1): ab wins (leftmost of the best), then nothing.
    assert_eq!(t.encode("aba"), vec![BOS, sp, ab, a]);
    assert_eq!(t.encode("bab"), vec![BOS, sp, ba, b]);
    // " a" merges when nothing better is left.
    assert_eq!(t.encode("a"), vec![BOS, spa]);
}

fn random_tok() -> Tokenizer {
    let (pieces, scores) = random_tokenizer(700, 5);
    let bytes = Tokenizer::to_bytes(&pieces, &scores);
    Tokenizer::parse(&bytes, 700, std::path::Path::new("t")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn raw_decode_inverts_encode_on_any_utf8(s in "\\PC{0,40}|[\\x00-\\x7f]{0,40}|.{0,20}") {
        for t in [tok512(), random_tok()] {
            let ids = t.encode(&s);
            prop_assert_eq!(ids[0], BOS);
            let back = t.decode_raw(BOS, &ids[1..]);
            let expected = if s.is_empty() { String::new() } else { s.clone() };
            prop_assert_eq!(String::from_utf8_lossy(&back), expected);
            prop_assert!(ids.iter().all(|&i| (i as usize) < t.vocab_size()));
        }
    }

    #[test]
    fn printed_text_equals_printable_ascii_input(s in "[ -~\\n\\t]{0,60}") {
        let t = tok512();
        let ids = t.encode(&s);
        prop_assert_eq!(t.decode_all(BOS, &ids[1..]), s.as_bytes());
    }
}
