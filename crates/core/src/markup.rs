//! Escaping text for HTML and XML (SVG) documents built by hand.

/// `text` safe inside HTML/XML text and single- or double-quoted attributes: `& < > " '` become
/// entities and control characters other than line breaks and tabs are dropped (XML 1.0 forbids most).
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_markup;

    #[test]
    fn markup_characters_become_entities_and_control_characters_go() {
        assert_eq!(
            escape_markup("a<b>&\"c'\u{7}\nd"),
            "a&lt;b&gt;&amp;&quot;c&#39;\nd"
        );
    }
}
