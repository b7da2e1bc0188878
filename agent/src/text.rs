//! Text that reaches a person: requests, arguments, file names and tool output are
//! written by agents and models, so they may hold terminal escape sequences ("repaint
//! the approval screen") or bidirectional-text controls (show `rm -rf ~` as something
//! else). Before anything is printed to a person or written to the audit log, every
//! such character is replaced by a visible escape: `\u{1b}` for ESC.

use std::borrow::Cow;

/// A character a terminal or a text renderer acts on instead of showing: C0 and C1
/// controls, DEL, and the Unicode bidirectional overrides, embeddings and isolates.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
        || ('\u{202A}'..='\u{202E}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn escape(s: &str, keep: impl Fn(char) -> Option<char>) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_control(c) {
            out.push(c);
        } else if let Some(k) = keep(c) {
            out.push(k);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// Text for a terminal: newlines and tabs stay, every other control is escaped.
pub fn printable(s: &str) -> Cow<'_, str> {
    escape(s, |c| matches!(c, '\n' | '\t').then_some(c))
}

/// One line for the audit log or a list: newlines, tabs and carriage returns become
/// spaces, every other control is escaped.
pub fn one_line(s: &str) -> String {
    escape(s, |c| matches!(c, '\n' | '\t' | '\r').then_some(' ')).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_repaint_the_screen_no_more() {
        let hostile = "run the command make test\x1b[2K\r\x1b[1Arm -rf ~";
        let shown = printable(hostile);
        assert!(!shown.contains('\x1b') && !shown.contains('\r'), "{shown}");
        assert_eq!(
            shown,
            "run the command make test\\u{1b}[2K\\u{d}\\u{1b}[1Arm -rf ~"
        );
        assert_eq!(printable("two\nlines\tok"), "two\nlines\tok");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
        // Bidirectional overrides, DEL and a C1 CSI.
        assert_eq!(
            printable("a\u{202E}b\u{7f}c\u{9b}d"),
            "a\\u{202e}b\\u{7f}c\\u{9b}d"
        );
        assert_eq!(one_line("a\nb\tc\rd\x07"), "a b c d\\u{7}");
    }
}
