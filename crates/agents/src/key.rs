//! The conversation key `tenant:agent:interlocutor:channel` and an incoming message.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::definition::AgentLimits;
use crate::error::{Error, Result};

/// Longest tenant, agent, interlocutor or channel, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;

/// One conversation: who talks to which agent of which tenant over which channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationKey {
    /// The tenant (from the caller's API key; `default` without one).
    pub tenant: String,
    /// The agent's name.
    pub agent: String,
    /// Who the agent talks to (a user id, a phone number, an address).
    pub interlocutor: String,
    /// The channel (`web`, `sms`, `whatsapp`, `email`, `voice`, or another name).
    pub channel: String,
}

impl ConversationKey {
    /// A key from its four parts, each checked: 1..=256 bytes, no control characters.
    ///
    /// # Errors
    /// [`Error::BadField`] naming the field.
    pub fn new(
        tenant: impl Into<String>,
        agent: impl Into<String>,
        interlocutor: impl Into<String>,
        channel: impl Into<String>,
    ) -> Result<Self> {
        let key = ConversationKey {
            tenant: tenant.into(),
            agent: agent.into(),
            interlocutor: interlocutor.into(),
            channel: channel.into(),
        };
        for (name, value) in [
            ("tenant", &key.tenant),
            ("agent", &key.agent),
            ("interlocutor", &key.interlocutor),
            ("channel", &key.channel),
        ] {
            check_field(name, value)?;
        }
        Ok(key)
    }
}

impl fmt::Display for ConversationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}",
            self.tenant, self.agent, self.interlocutor, self.channel
        )
    }
}

fn check_field(name: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::BadField(format!("`{name}` is empty")));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(Error::BadField(format!(
            "`{name}` is {} bytes; at most {MAX_FIELD_BYTES}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::BadField(format!("`{name}` contains a control character")));
    }
    Ok(())
}

/// A message to an agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The conversation it belongs to.
    pub key: ConversationKey,
    /// The text, as sent.
    pub text: String,
    /// Attachments, as sent (JSON values: URLs, ids, small objects); the cascade sees them as given.
    pub attachments: Vec<Value>,
}

impl Message {
    /// A text message without attachments.
    pub fn text(key: ConversationKey, text: impl Into<String>) -> Self {
        Message {
            key,
            text: text.into(),
            attachments: Vec::new(),
        }
    }

    /// Check the message against an agent's limits.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] past `max_message_bytes`; [`Error::BadField`] past `max_attachments`.
    pub fn check(&self, limits: &AgentLimits) -> Result<()> {
        if self.attachments.len() > limits.max_attachments {
            return Err(Error::BadField(format!(
                "{} attachments; at most {} (setting limits.max_attachments)",
                self.attachments.len(),
                limits.max_attachments
            )));
        }
        let bytes = self.text.len()
            + self
                .attachments
                .iter()
                .map(|a| a.to_string().len())
                .sum::<usize>();
        if bytes > limits.max_message_bytes {
            return Err(Error::MessageTooLarge {
                agent: self.key.agent.clone(),
                bytes,
                limit: limits.max_message_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_their_parts_and_refuse_bad_fields() {
        let k = ConversationKey::new("acme", "travel", "+33123", "sms").unwrap();
        assert_eq!(k.to_string(), "acme:travel:+33123:sms");
        let e = ConversationKey::new("acme", "travel", "", "sms").unwrap_err();
        assert!(e.to_string().contains("`interlocutor` is empty"), "{e}");
        let e = ConversationKey::new("acme", "travel", "x", "we\nb").unwrap_err();
        assert!(e.to_string().contains("`channel` contains a control"), "{e}");
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        let e = ConversationKey::new(long, "travel", "x", "web").unwrap_err();
        assert!(e.to_string().starts_with("RVB-G003 `tenant` is 257 bytes"), "{e}");
    }

    #[test]
    fn messages_are_bounded() {
        let k = ConversationKey::new("t", "a", "i", "web").unwrap();
        let limits = AgentLimits {
            max_message_bytes: 10,
            max_attachments: 1,
            ..AgentLimits::default()
        };
        assert!(Message::text(k.clone(), "0123456789").check(&limits).is_ok());
        let e = Message::text(k.clone(), "01234567890")
            .check(&limits)
            .unwrap_err();
        assert_eq!(e.code().code, "RVB-G002");
        assert!(e.to_string().contains("limits.max_message_bytes"), "{e}");
        let mut m = Message::text(k, "x");
        m.attachments = vec![Value::Null, Value::Null];
        assert_eq!(m.check(&limits).unwrap_err().code().code, "RVB-G003");
    }
}
