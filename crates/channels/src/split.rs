//! Splitting an outbound message at a channel's length limit.
//!
//! Limits count characters (Unicode scalar values), as Slack's 4,000 and Mattermost's 16,383 do. A cut
//! prefers, in order: a line break, then a sentence end (`.`, `!` or `?` followed by a space), then a
//! space, each in the second half of the part so parts stay large; then any of those anywhere in the
//! part; and only then a hard cut at the limit, which still falls between two characters, never inside
//! one. The whitespace at a cut is dropped; nothing else is.

/// Split `text` into parts of at most `max_chars` characters each (at least 1). An empty or
/// whitespace-only text gives no parts.
pub fn split(text: &str, max_chars: usize) -> Vec<String> {
    let max = max_chars.max(1);
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // Byte index just past the first `max` characters (or the whole rest).
        let window_end = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        if window_end == rest.len() {
            parts.push(rest.to_owned());
            break;
        }
        let window = &rest[..window_end];
        let (head, tail) = match cut(window) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (window, &rest[window_end..]),
        };
        let head = head.trim_end();
        if !head.is_empty() {
            parts.push(head.to_owned());
        }
        rest = tail.trim_start();
    }
    parts
}

/// The byte index to cut `window` at (the end of the part), or `None` for a hard cut at its end.
fn cut(window: &str) -> Option<usize> {
    let half = window.len() / 2;
    let lines = || window.match_indices('\n').map(|(i, _)| i + 1);
    let sentences = || {
        window
            .match_indices(['.', '!', '?'])
            .map(|(i, _)| i + 1)
            .filter(|&i| window[i..].starts_with([' ', '\n']))
    };
    let words = || window.match_indices(' ').map(|(i, _)| i + 1);
    let late = |it: &mut dyn Iterator<Item = usize>| it.filter(|&i| i > half).last();
    let any = |it: &mut dyn Iterator<Item = usize>| it.filter(|&i| i > 0).last();
    late(&mut lines())
        .or_else(|| late(&mut sentences()))
        .or_else(|| late(&mut words()))
        .or_else(|| any(&mut lines()))
        .or_else(|| any(&mut sentences()))
        .or_else(|| any(&mut words()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn squeeze(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn a_text_at_the_limit_is_one_part_and_one_more_character_is_two() {
        let exact = "a".repeat(4000);
        assert_eq!(split(&exact, 4000), std::slice::from_ref(&exact));
        let over = "a".repeat(4001);
        let parts = split(&over, 4000);
        assert_eq!(parts.iter().map(String::len).collect::<Vec<_>>(), [4000, 1]);
        assert!(split("  \n ", 10).is_empty());
    }

    #[test]
    fn cuts_prefer_lines_then_sentences_then_words() {
        let text = "First line here.\nSecond one. Third sentence is long";
        assert_eq!(
            split(text, 20),
            ["First line here.", "Second one.", "Third sentence is", "long"]
        );
        let sentences = "One two three. Four five six. Seven eight";
        assert_eq!(
            split(sentences, 32),
            ["One two three. Four five six.", "Seven eight"]
        );
        assert_eq!(split("alpha beta gamma", 12), ["alpha beta", "gamma"]);
    }

    #[test]
    fn a_line_break_early_in_the_part_loses_to_a_sentence_late_in_it() {
        let text = "Hi\nThis is a sentence. And more words follow";
        assert_eq!(split(text, 30)[0], "Hi\nThis is a sentence.");
    }

    #[test]
    fn hard_cuts_never_split_a_character() {
        let text = "é".repeat(10) + &"日本".repeat(5);
        let parts = split(&text, 7);
        assert!(parts.iter().all(|p| p.chars().count() <= 7), "{parts:?}");
        assert_eq!(parts.concat(), text);
        let emoji = "🦀".repeat(9);
        assert_eq!(split(&emoji, 4).concat(), emoji);
    }

    #[test]
    fn long_prose_splits_into_ordered_parts_within_the_limit_losing_only_whitespace() {
        let sentence = "The quick brown fox jumps over the lazy dog again and again. ";
        let text = sentence.repeat(200) + "\nDone.";
        for max in [4000, 16_383, 100, 37] {
            let parts = split(&text, max);
            assert!(parts.iter().all(|p| p.chars().count() <= max && !p.is_empty()));
            assert_eq!(squeeze(&parts.concat()), squeeze(&text), "max {max}");
            if max >= 100 {
                assert!(
                    parts[..parts.len() - 1].iter().all(|p| p.ends_with('.')),
                    "max {max}"
                );
            }
        }
    }
}
