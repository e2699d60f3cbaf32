//! [`Contacts`]: the verified email and phone number of a message's sender, normalised, which link
//! one person's identities across channels when the tenant turns `link_identities` on.
//!
//! Only facts the adapter authenticated become contacts: the signed webhook's `email` with
//! `email_verified: true` (and `phone` with `phone_verified: true`), Slack's profile email read with
//! the bot token, Mattermost's email when its server says `email_verified`.
//! The web chat's visitors are anonymous and never have any. A malformed or oversized fact is dropped,
//! not an error to the sender.

/// Longest email address, in bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Longest phone number as sent, in bytes.
pub const MAX_PHONE_BYTES: usize = 32;

/// A sender's verified contact facts, normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contacts {
    /// The email address, lowercase.
    pub email: Option<String>,
    /// The phone number: `+` and its digits (E.164-like).
    pub phone: Option<String>,
}

impl Contacts {
    /// Contacts from facts the platform vouched for; malformed ones are left out.
    pub fn verified(email: Option<&str>, phone: Option<&str>) -> Self {
        Contacts {
            email: email.and_then(normalise_email),
            phone: phone.and_then(normalise_phone),
        }
    }

    /// Whether there is neither an email nor a phone number.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.phone.is_none()
    }

    /// The facts as the store keys links (`email:…`, `phone:…`), the email first.
    pub fn facts(&self) -> Vec<String> {
        let email = self.email.iter().map(|e| format!("email:{e}"));
        let phone = self.phone.iter().map(|p| format!("phone:{p}"));
        email.chain(phone).collect()
    }
}

/// `raw` as a lowercase address, if it is one: at most [`MAX_EMAIL_BYTES`], one `@` between a
/// non-empty local part and a domain with a dot, no spaces or control characters.
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    if email.is_empty() || email.len() > MAX_EMAIL_BYTES {
        return None;
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    (!local.is_empty() && domain_ok).then(|| email.to_lowercase())
}

/// `raw` as `+` and 7 to 15 digits, if it is a phone number in international form: at most
/// [`MAX_PHONE_BYTES`], a leading `+`, digits separated by spaces, `-`, `.` or parentheses.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let phone = raw.trim();
    if phone.len() > MAX_PHONE_BYTES {
        return None;
    }
    let rest = phone.strip_prefix('+')?;
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    let ok = (7..=15).contains(&digits.len()) && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lowercased_and_malformed_ones_dropped() {
        assert_eq!(
            normalise_email(" Alice@Example.COM ").as_deref(),
            Some("alice@example.com")
        );
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a@b@c.com",
            "a b@c.com",
            "a@.com",
            "a@c.com.",
            "a@c..com",
            "a\u{0}@c.com",
            long.as_str(),
        ] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn phones_are_plus_and_digits_and_malformed_ones_dropped() {
        assert_eq!(
            normalise_phone("+1 (555) 123-4567").as_deref(),
            Some("+15551234567")
        );
        assert_eq!(
            normalise_phone("+44.20.7946.0958").as_deref(),
            Some("+442079460958")
        );
        let long = format!("+1{}", " 5".repeat(20));
        for bad in [
            "5551234567",
            "+",
            "+123",
            "+1234567890123456",
            "+1555x1234567",
            "+0555123456",
            long.as_str(),
        ] {
            assert_eq!(normalise_phone(bad), None, "{bad}");
        }
    }

    #[test]
    fn facts_put_the_email_first() {
        let c = Contacts::verified(Some("Bob@Example.com"), Some("+1 555 123 4567"));
        assert_eq!(c.facts(), ["email:bob@example.com", "phone:+15551234567"]);
        assert!(Contacts::verified(Some("nope"), None).is_empty());
    }
}
