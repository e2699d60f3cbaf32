//! Screens for people who are not browsers: the routes a screen offers (its `route_button`s, else the
//! cell's handoffs) and its HTML as plain text, so the terminal prompt, `rvbbit signal list` and the
//! Studio can show the choices as numbered options or buttons instead of raw markup.
//!
//! The HTML is the screen's own, rendered by the engine's templates; this is a small, bounded tag
//! scanner (no DOM, no scripts), enough for the markup screens are made of.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Question, QuestionKind};

/// The most HTML read, and the most text written, for one screen.
const MAX_HTML: usize = 256 * 1024;
const MAX_TEXT: usize = 8 * 1024;
/// The most routes listed for one screen.
const MAX_ROUTES: usize = 50;

/// One way on from a screen: a button (or a handoff) and the cell it leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Route {
    /// What the button says.
    pub label: String,
    /// The cell it routes to (the form's `_route`).
    pub target: String,
}

impl Route {
    /// The answer that takes this route: `{"_route": target}`.
    pub fn answer(&self) -> Value {
        json!({"_route": self.target})
    }
}

impl Question {
    /// The routes a screen offers, in page order: its `route_button`s (and `submit_button`s with a
    /// route), else one per handoff of the cell. Empty for other kinds of question.
    pub fn routes(&self) -> Vec<Route> {
        if self.kind != QuestionKind::Screen {
            return Vec::new();
        }
        let mut routes = self.html.as_deref().map(buttons).unwrap_or_default();
        if routes.is_empty() {
            routes = self
                .handoffs
                .iter()
                .map(|h| Route {
                    label: h.clone(),
                    target: h.clone(),
                })
                .collect();
        }
        routes.truncate(MAX_ROUTES);
        routes
    }

    /// The screen's HTML as readable text (tags dropped, blocks on their own lines, route buttons left
    /// out because [`Question::routes`] lists them); `None` for a question without a screen.
    pub fn screen_text(&self) -> Option<String> {
        self.html.as_deref().map(html_text)
    }
}

/// A piece of markup.
#[derive(Debug, PartialEq)]
enum Token {
    Text(String),
    Tag {
        name: String,
        closing: bool,
        attrs: Vec<(String, String)>,
    },
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Split `html` into text and tags; comments and the contents of `script` and `style` are dropped.
fn tokens(html: &str) -> Vec<Token> {
    let html = match html.char_indices().nth(MAX_HTML) {
        Some((i, _)) => &html[..i],
        None => html,
    };
    let mut out = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            out.push(Token::Text(decode(rest)));
            break;
        };
        if lt > 0 {
            out.push(Token::Text(decode(&rest[..lt])));
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |i| &after[i + 3..]);
            continue;
        }
        let (tag, after) = split_tag(rest);
        let Some(t) = parse_tag(tag) else {
            // A lone `<` that starts no tag is text; scanning goes on after it.
            out.push(Token::Text("<".into()));
            rest = &rest[1..];
            continue;
        };
        rest = after;
        if let Token::Tag {
            name, closing: false, ..
        } = &t
            && (name == "script" || name == "style")
        {
            let close = format!("</{name}");
            rest = rest
                .to_ascii_lowercase()
                .find(&close)
                .and_then(|i| rest[i..].find('>').map(|j| &rest[i + j + 1..]))
                .unwrap_or("");
            continue;
        }
        out.push(t);
    }
    out
}

/// The tag at the start of `s` (up to its `>`, quotes respected) and what follows it.
fn split_tag(s: &str) -> (&str, &str) {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return (&s[..=i], &s[i + 1..]),
            _ => {}
        }
    }
    (s, "")
}

fn parse_tag(tag: &str) -> Option<Token> {
    let inner = tag.strip_prefix('<')?.trim_end_matches('>').trim_end_matches('/');
    let (closing, inner) = match inner.strip_prefix('/') {
        Some(i) => (true, i),
        None => (false, inner),
    };
    let name_end = inner.find(|c: char| c.is_whitespace()).unwrap_or(inner.len());
    let name = inner[..name_end].to_ascii_lowercase();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '!')
    {
        return None;
    }
    Some(Token::Tag {
        name,
        closing,
        attrs: attrs(&inner[name_end..]),
    })
}

/// `name="value"`, `name='value'`, `name=value` and bare `name` attributes.
fn attrs(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if s.is_empty() {
            return out;
        }
        let end = s.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(s.len());
        let key = s[..end].to_ascii_lowercase();
        s = s[end..].trim_start();
        let value = if let Some(v) = s.strip_prefix('=') {
            let v = v.trim_start();
            match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &v[1..];
                    let close = body.find(q).unwrap_or(body.len());
                    s = body.get(close + 1..).unwrap_or("");
                    decode(&body[..close])
                }
                _ => {
                    let close = v.find(char::is_whitespace).unwrap_or(v.len());
                    s = &v[close..];
                    decode(&v[..close])
                }
            }
        } else {
            String::new()
        };
        if key.is_empty() {
            // A stray `=value` without a name: dropped (the value was consumed, so this makes progress).
            continue;
        }
        out.push((key, value));
    }
}

/// Decode the common entities (`&amp;`, `&lt;`, `&#39;`, `&#x27;`, ...); others stay as written.
fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok().and_then(char::from_u32),
                    None => name
                        .strip_prefix('#')
                        .and_then(|d| d.parse::<u32>().ok())
                        .and_then(char::from_u32),
                },
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The route buttons of a screen, in page order, each target once.
fn buttons(html: &str) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    let mut pending: Option<String> = None; // a hidden `_route` input waiting for its button
    let mut open: Option<(String, String)> = None; // (target, label so far) inside a route button
    for t in tokens(html) {
        match t {
            Token::Tag {
                name,
                closing: false,
                attrs,
            } if name == "input"
                && attr(&attrs, "name") == Some("_route")
                && attr(&attrs, "type") == Some("hidden") =>
            {
                pending = attr(&attrs, "value").map(str::to_owned);
            }
            Token::Tag {
                name,
                closing: false,
                attrs,
            } if name == "button" => {
                let target = if attr(&attrs, "name") == Some("_route") {
                    attr(&attrs, "value").map(str::to_owned)
                } else {
                    pending.take()
                };
                open = target.map(|t| (t, String::new()));
            }
            Token::Text(text) => {
                if let Some((_, label)) = &mut open {
                    label.push_str(&text);
                }
            }
            Token::Tag {
                name, closing: true, ..
            } if name == "button" => {
                if let Some((target, label)) = open.take()
                    && !target.is_empty()
                    && !routes.iter().any(|r| r.target == target)
                {
                    let label = collapse(&label);
                    routes.push(Route {
                        label: if label.is_empty() { target.clone() } else { label },
                        target,
                    });
                }
            }
            _ => {}
        }
    }
    routes
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Elements that start and end a line of text.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "form",
    "pre",
    "hr",
    "blockquote",
    "dl",
    "dt",
    "dd",
    "fieldset",
    "legend",
    "label",
    "details",
    "summary",
];

fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_route_button = false;
    let mut pending_route = false; // a hidden `_route` input makes the next button a route
    for t in tokens(html) {
        match t {
            Token::Text(text) => {
                if !in_route_button {
                    out.push_str(&text);
                }
            }
            Token::Tag { name, closing, attrs } => match name.as_str() {
                "button" if !closing => {
                    in_route_button = attr(&attrs, "name") == Some("_route") || pending_route;
                    pending_route = false;
                    if !in_route_button {
                        out.push_str(" [");
                    }
                }
                "button" => {
                    if !in_route_button {
                        out.push_str("] ");
                    }
                    in_route_button = false;
                }
                "input" | "textarea" | "select" if !closing => {
                    let kind = attr(&attrs, "type").unwrap_or("");
                    if kind == "hidden" && attr(&attrs, "name") == Some("_route") {
                        pending_route = true;
                    }
                    if let Some(field) = attr(&attrs, "name")
                        && kind != "hidden"
                        && kind != "submit"
                    {
                        out.push_str(&format!(" [field `{field}`] "));
                    }
                }
                "li" if !closing => out.push_str("\n- "),
                "td" | "th" if !closing => out.push_str(" | "),
                n if BLOCKS.contains(&n) => out.push('\n'),
                _ => {}
            },
        }
        if out.len() > MAX_TEXT * 2 {
            break;
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for line in out.lines() {
        let line = collapse(line);
        if !line.is_empty() {
            lines.push(line);
        }
    }
    let text = lines.join("\n");
    match text.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(html: &str) -> Question {
        let mut q: Question = serde_json::from_value(json!({
            "session_id": "s-1", "cell": "approve", "signal": "approve", "kind": "screen",
            "prompt": "Approve?", "html": html,
        }))
        .unwrap();
        q.handoffs = vec!["publish".into(), "draft".into()];
        q
    }

    const HTML: &str = "<h2>Draft &amp; notes</h2>\n<p>A short   draft.<br>Second line</p>\n\
        <script>alert('x')</script><style>p{}</style><!-- hidden -->\
        <label>Note <textarea name=\"note\"></textarea></label>\n\
        <button type=\"submit\" name=\"_route\" value=\"publish\">Ship it</button> \
        <button type=\"submit\" name=\"_route\" value=\"draft\">Redo &lt;again&gt;</button>\
        <input type=\"hidden\" name=\"_route\" value=\"archive\"><button type=\"submit\" name=\"action\" value=\"a\">Archive</button>";

    #[test]
    fn routes_come_from_the_buttons_in_page_order() {
        let routes = screen(HTML).routes();
        let pairs: Vec<(&str, &str)> = routes
            .iter()
            .map(|r| (r.label.as_str(), r.target.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Ship it", "publish"),
                ("Redo <again>", "draft"),
                ("Archive", "archive")
            ]
        );
        assert_eq!(routes[0].answer(), json!({"_route": "publish"}));
    }

    #[test]
    fn without_buttons_the_handoffs_are_the_routes() {
        let routes = screen("<p>Pick one</p>").routes();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[1].target, "draft");
    }

    #[test]
    fn screen_text_drops_tags_scripts_and_route_buttons() {
        let text = screen(HTML).screen_text().unwrap();
        assert_eq!(
            text,
            "Draft & notes\nA short draft.\nSecond line\nNote [field `note`]"
        );
        assert!(!text.contains('<'), "{text}");
        assert!(!text.contains("alert"), "{text}");
    }

    #[test]
    fn broken_markup_and_long_screens_stay_bounded() {
        let q = screen("<p>a < b and <unclosed");
        assert_eq!(q.screen_text().unwrap(), "a < b and");
        let long = "<p>word</p>".repeat(20_000);
        let text = screen(&long).screen_text().unwrap();
        assert!(text.chars().count() <= MAX_TEXT + 1, "{}", text.len());
        // A route button never closed is no route: the handoffs stand in.
        assert_eq!(
            screen("<button name=_route value=x>X").routes()[0].target,
            "publish"
        );
    }
}
