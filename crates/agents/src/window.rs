//! The turn-accumulation window: how long a conversation waits after a message for the next one before
//! it answers, so that "hi" / "I need to change" / "my booking AB12" become one turn.
//!
//! [`wait_after`] is a pure function of the channel's settings and the messages gathered so far:
//!
//! 1. the channel's base (`web` 600 ms, `sms` 800, `whatsapp` 1200, `email` and `voice` 0, any other
//!    channel [`WindowSettings::default_ms`], 800); a base of 0 answers at once;
//! 2. times the shape of the latest message: explicit completion (`?`, `.`, `!`, "thanks") × 0.5; an
//!    incomplete id (`AB12-`, `#`, a short code with digits at the end) × 1.6; a greeting alone × 1.5;
//!    a trailing comma or conjunction × 1.5; a fragment (at most three words, no end punctuation) × 1.3;
//! 3. times 0.8 for every message after the first;
//! 4. clamped to [`WindowSettings::min_ms`]..=[`WindowSettings::max_ms`] (200..=3000).
//!
//! Two caps bound a turn group however the messages come: the window never ends later than
//! [`WindowSettings::max_wait_ms`] after the group's first message, and a group closes as soon as it
//! holds [`WindowSettings::max_messages`] messages.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Window settings of an agent (the `window:` block of an agent file). Every field has a default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowSettings {
    /// The base of a channel without its own entry, in milliseconds (default 800).
    pub default_ms: u64,
    /// The shortest window of a channel whose base is not 0 (default 200).
    pub min_ms: u64,
    /// The longest window (default 3000).
    pub max_ms: u64,
    /// The longest a turn group gathers messages, from its first message (default 8000).
    pub max_wait_ms: u64,
    /// The most messages one turn group gathers; the window closes at once when reached (default 12).
    pub max_messages: usize,
    /// Bases by channel, over the built-in ones (`web` 600, `sms` 800, `whatsapp` 1200, `email` 0,
    /// `voice` 0). A base of 0 answers at once.
    pub channels: BTreeMap<String, u64>,
}

impl Default for WindowSettings {
    fn default() -> Self {
        WindowSettings {
            default_ms: 800,
            min_ms: 200,
            max_ms: 3000,
            max_wait_ms: 8000,
            max_messages: 12,
            channels: BTreeMap::new(),
        }
    }
}

/// The built-in channel bases, in milliseconds.
pub const CHANNEL_BASES: &[(&str, u64)] = &[
    ("web", 600),
    ("sms", 800),
    ("whatsapp", 1200),
    ("email", 0),
    ("voice", 0),
];

/// Largest accepted `max_ms` / `max_wait_ms` (one minute) and `max_messages` (100).
const MAX_SETTING_MS: u64 = 60_000;
const MAX_SETTING_MESSAGES: usize = 100;

impl WindowSettings {
    /// The base window of `channel`: its own entry, else the built-in base, else `default_ms`.
    pub fn base_ms(&self, channel: &str) -> u64 {
        self.channels
            .get(channel)
            .copied()
            .or_else(|| CHANNEL_BASES.iter().find(|(c, _)| *c == channel).map(|(_, b)| *b))
            .unwrap_or(self.default_ms)
    }

    /// Every problem with these settings (empty when they are usable).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.min_ms > self.max_ms {
            out.push(format!(
                "window.min_ms ({}) is above window.max_ms ({})",
                self.min_ms, self.max_ms
            ));
        }
        for (name, value) in [
            ("max_ms", self.max_ms),
            ("max_wait_ms", self.max_wait_ms),
            ("default_ms", self.default_ms),
        ] {
            if value > MAX_SETTING_MS {
                out.push(format!("window.{name} ({value}) is above {MAX_SETTING_MS} ms"));
            }
        }
        for (channel, base) in &self.channels {
            if *base > MAX_SETTING_MS {
                out.push(format!(
                    "window.channels.{channel} ({base}) is above {MAX_SETTING_MS} ms"
                ));
            }
        }
        if self.max_messages == 0 || self.max_messages > MAX_SETTING_MESSAGES {
            out.push(format!(
                "window.max_messages ({}) must be 1..={MAX_SETTING_MESSAGES}",
                self.max_messages
            ));
        }
        out
    }
}

/// How long to wait after the latest of `messages` (the texts gathered so far, oldest first) for
/// another one on `channel`. Zero means answer now. Pure: same inputs, same answer.
pub fn wait_after(settings: &WindowSettings, channel: &str, messages: &[&str]) -> Duration {
    let base = settings.base_ms(channel);
    let Some(last) = messages.last() else {
        return Duration::ZERO;
    };
    if base == 0 || messages.len() >= settings.max_messages {
        return Duration::ZERO;
    }
    let mut ms = base as f64 * shape_factor(last);
    let extra = i32::try_from(messages.len().saturating_sub(1)).unwrap_or(i32::MAX);
    ms *= 0.8_f64.powi(extra);
    let clamped = ms.round().clamp(settings.min_ms as f64, settings.max_ms as f64);
    // `clamped` is finite and within 0..=max_ms (at most one minute), so the cast is exact.
    Duration::from_millis(clamped as u64)
}

const GREETINGS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "yo",
    "good morning",
    "good afternoon",
    "good evening",
    "bonjour",
    "hola",
];
const THANKS: &[&str] = &["thanks", "thank you", "thx", "ty", "cheers", "bye", "goodbye"];
const CONJUNCTIONS: &[&str] = &["and", "but", "or", "so", "because", "also", "then", "with"];

/// The factor the latest message's shape puts on the base window.
fn shape_factor(text: &str) -> f64 {
    let trimmed = text.trim();
    let lower = trimmed.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let bare = lower.trim_end_matches(['!', '.', ' ']);
    if THANKS
        .iter()
        .any(|t| bare == *t || bare.ends_with(&format!(" {t}")))
    {
        return 0.5;
    }
    if incomplete_id(trimmed) {
        return 1.6;
    }
    if GREETINGS.contains(&bare.trim_end_matches(',')) {
        return 1.5;
    }
    if trimmed.ends_with(['?', '.', '!']) {
        return 0.5;
    }
    if trimmed.ends_with([',', ':', ';']) || words.last().is_some_and(|w| CONJUNCTIONS.contains(w)) {
        return 1.5;
    }
    if words.len() <= 3 {
        return 1.3;
    }
    1.0
}

/// Whether the text ends in what looks like an identifier still being typed: a trailing `-`, `#` or
/// `/`, or a last token of 2..=5 characters mixing letters and digits (`AB12`).
fn incomplete_id(text: &str) -> bool {
    if text.ends_with(['-', '#', '/']) {
        return true;
    }
    let Some(token) = text.split_whitespace().last() else {
        return false;
    };
    let has_digit = token.chars().any(|c| c.is_ascii_digit());
    let all_alnum = token.chars().all(|c| c.is_ascii_alphanumeric());
    let has_alpha = token.chars().any(|c| c.is_ascii_alphabetic());
    all_alnum && has_digit && has_alpha && (2..=5).contains(&token.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(channel: &str, messages: &[&str]) -> u64 {
        wait_after(&WindowSettings::default(), channel, messages).as_millis() as u64
    }

    #[test]
    fn channels_have_their_documented_bases() {
        let s = WindowSettings::default();
        assert_eq!(s.base_ms("web"), 600);
        assert_eq!(s.base_ms("sms"), 800);
        assert_eq!(s.base_ms("whatsapp"), 1200);
        assert_eq!(s.base_ms("email"), 0);
        assert_eq!(s.base_ms("voice"), 0);
        assert_eq!(s.base_ms("telegram"), 800);
        let mut custom = WindowSettings::default();
        custom.channels.insert("web".into(), 0);
        assert_eq!(custom.base_ms("web"), 0);
    }

    #[test]
    fn a_plain_sentence_waits_the_base() {
        assert_eq!(ms("web", &["I would like to change my booking"]), 600);
        assert_eq!(ms("sms", &["I would like to change my booking"]), 800);
        assert_eq!(ms("whatsapp", &["I would like to change my booking"]), 1200);
    }

    #[test]
    fn zero_base_channels_answer_at_once_whatever_the_shape() {
        assert_eq!(ms("email", &["hi"]), 0);
        assert_eq!(ms("voice", &["my code is AB12"]), 0);
    }

    #[test]
    fn completion_shortens_and_fragments_greetings_and_ids_lengthen() {
        let plain = ms("whatsapp", &["I would like to change my booking"]);
        assert!(ms("whatsapp", &["Can you change my booking?"]) < plain);
        assert!(ms("whatsapp", &["ok thanks"]) < plain);
        assert!(ms("whatsapp", &["Thank you!"]) < plain);
        assert_eq!(ms("whatsapp", &["hello"]), 1800);
        assert_eq!(ms("whatsapp", &["my booking is AB12"]), 1920);
        assert_eq!(ms("whatsapp", &["reference #"]), 1920);
        assert_eq!(ms("whatsapp", &["change booking"]), 1560);
        assert_eq!(ms("whatsapp", &["I want to fly to Paris and"]), 1800);
    }

    #[test]
    fn each_extra_message_shortens_by_a_fifth() {
        let one = ms("sms", &["I would like to change my booking"]);
        let two = ms("sms", &["x y z w", "I would like to change my booking"]);
        let three = ms(
            "sms",
            &["a b c d", "x y z w", "I would like to change my booking"],
        );
        assert_eq!(one, 800);
        assert_eq!(two, 640);
        assert_eq!(three, 512);
    }

    #[test]
    fn results_are_clamped_to_min_and_max() {
        // 600 × 0.5 × 0.8^3 = 153.6 → min 200.
        assert_eq!(ms("web", &["a", "b", "c", "Done."]), 200);
        let mut s = WindowSettings::default();
        s.channels.insert("slow".into(), 2500);
        // 2500 × 1.6 = 4000 → max 3000.
        assert_eq!(wait_after(&s, "slow", &["code AB12"]).as_millis(), 3000);
    }

    #[test]
    fn the_message_cap_closes_the_window() {
        let s = WindowSettings {
            max_messages: 3,
            ..WindowSettings::default()
        };
        assert_eq!(wait_after(&s, "web", &["a", "b"]).as_millis(), 624);
        assert_eq!(wait_after(&s, "web", &["a", "b", "c"]), Duration::ZERO);
        assert_eq!(wait_after(&s, "web", &[]), Duration::ZERO);
    }

    #[test]
    fn settings_problems_name_the_setting() {
        assert!(WindowSettings::default().problems().is_empty());
        let mut s = WindowSettings {
            min_ms: 5000,
            max_messages: 0,
            ..WindowSettings::default()
        };
        s.channels.insert("web".into(), 120_000);
        let p = s.problems().join("\n");
        assert!(
            p.contains("window.min_ms (5000) is above window.max_ms (3000)"),
            "{p}"
        );
        assert!(p.contains("window.max_messages (0)"), "{p}");
        assert!(p.contains("window.channels.web (120000)"), "{p}");
    }
}
