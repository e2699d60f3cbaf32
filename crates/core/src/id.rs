//! Identifiers: session ids in the woodland style and caller ids.
//!
//! A woodland id reads `adjective-animal-hex`, like `clever-otter-3f9a1c2b7d4e5f60`. The words make ids
//! easy to say and to spot in logs; the 64 random bits of hex make them unique.
//!
//! Entropy: 96 adjectives × 96 animals (≈13.2 bits) plus 16 hex digits (64 bits) ≈ 77 bits. Among 10^9
//! ids the chance that any two collide is about n²/2N = 10^18 / (2 × 1.5·10^23) ≈ 3·10^-6, and for a
//! single new id to collide with one of 10^9 existing ids it is about 7·10^-15: negligible.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const ADJECTIVES: [&str; 96] = [
    "amber",
    "ancient",
    "autumn",
    "bold",
    "brave",
    "bright",
    "brisk",
    "calm",
    "candid",
    "clever",
    "cobalt",
    "cosmic",
    "crimson",
    "crisp",
    "curious",
    "daring",
    "dawn",
    "deft",
    "dusky",
    "eager",
    "early",
    "easy",
    "ember",
    "fabled",
    "fair",
    "fern",
    "fleet",
    "foggy",
    "frosty",
    "gentle",
    "gilded",
    "glad",
    "golden",
    "grand",
    "hazel",
    "hidden",
    "hollow",
    "honest",
    "humble",
    "icy",
    "ivory",
    "jade",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucky",
    "lunar",
    "mellow",
    "merry",
    "misty",
    "mossy",
    "nimble",
    "noble",
    "olive",
    "patient",
    "plucky",
    "polar",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "rosy",
    "royal",
    "rustic",
    "sage",
    "scarlet",
    "shady",
    "silent",
    "silver",
    "sly",
    "snowy",
    "solar",
    "spry",
    "steady",
    "stormy",
    "sunny",
    "swift",
    "tawny",
    "tidy",
    "timber",
    "tranquil",
    "trusty",
    "velvet",
    "vivid",
    "wandering",
    "warm",
    "wary",
    "wild",
    "windy",
    "wise",
    "witty",
    "young",
    "zealous",
    "zesty",
    "dusk",
];

const ANIMALS: [&str; 96] = [
    "badger",
    "bat",
    "bear",
    "beaver",
    "bison",
    "bobcat",
    "boar",
    "bunting",
    "buzzard",
    "caribou",
    "chipmunk",
    "cougar",
    "coyote",
    "crane",
    "crow",
    "deer",
    "dormouse",
    "dove",
    "eagle",
    "egret",
    "elk",
    "ermine",
    "falcon",
    "fawn",
    "ferret",
    "finch",
    "fox",
    "frog",
    "gecko",
    "goose",
    "grouse",
    "hare",
    "hawk",
    "hedgehog",
    "heron",
    "ibis",
    "jackal",
    "jay",
    "kestrel",
    "kingfisher",
    "kite",
    "lark",
    "lemming",
    "lizard",
    "lynx",
    "magpie",
    "marmot",
    "marten",
    "mink",
    "mole",
    "moose",
    "moth",
    "mouse",
    "newt",
    "nightjar",
    "osprey",
    "otter",
    "owl",
    "panther",
    "partridge",
    "pheasant",
    "pika",
    "muskrat",
    "plover",
    "porcupine",
    "possum",
    "puffin",
    "quail",
    "rabbit",
    "raccoon",
    "raven",
    "robin",
    "salamander",
    "shrew",
    "skunk",
    "snowshoe",
    "sparrow",
    "squirrel",
    "stag",
    "stoat",
    "swallow",
    "swift",
    "tapir",
    "thrush",
    "toad",
    "tortoise",
    "vole",
    "warbler",
    "weasel",
    "wildcat",
    "wolf",
    "wolverine",
    "woodcock",
    "woodpecker",
    "wren",
    "yak",
];

/// Random hex digits in a woodland id.
const HEX_DIGITS: usize = 16;

/// Generate a fresh woodland name: `adjective-animal-<16 hex digits>` (matches
/// `^[a-z]+-[a-z]+-[0-9a-f]{16}$`).
pub fn woodland_name() -> String {
    woodland_name_with(&mut rand::rng())
}

/// Generate a woodland name from a given random source (for reproducible tests).
pub fn woodland_name_with<R: Rng + ?Sized>(rng: &mut R) -> String {
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let animal = ANIMALS[rng.random_range(0..ANIMALS.len())];
    let bits: u64 = rng.random();
    format!("{adjective}-{animal}-{bits:0width$x}", width = HEX_DIGITS)
}

/// Why a text is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Empty, too long, or containing characters other than letters, digits, `-`, `_` and `.`.
    #[error(
        "`{0}` is not a valid id: use 1 to 128 letters, digits, `-`, `_` or `.` (for example `nightly-report-1`)"
    )]
    Invalid(String),
}

fn check_id(text: &str) -> Result<(), IdError> {
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(IdError::Invalid(text.to_owned()))
    }
}

/// The id of one run of a cascade (a session).
///
/// New ids are woodland names ([`SessionId::new_woodland`]); ids given by a user (`--session ID`) are
/// accepted when they are 1–128 characters of letters, digits, `-`, `_` and `.`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct SessionId(String);

impl SessionId {
    /// A fresh woodland session id.
    pub fn new_woodland() -> Self {
        SessionId(woodland_name())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SessionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        check_id(s)?;
        Ok(SessionId(s.to_owned()))
    }
}

impl TryFrom<String> for SessionId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        check_id(&s)?;
        Ok(SessionId(s))
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which door a run came in through; the prefix of its caller id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Origin {
    /// The command line (`cli-…`).
    Cli,
    /// A SQL statement (`sql-…`).
    Sql,
    /// An HTTP request (`http-…`).
    Http,
    /// A batch run (`batch-…`).
    Batch,
    /// A turn of a conversational agent (`agent-…`, one caller id per turn group).
    Agent,
}

impl Origin {
    /// The caller-id prefix for this origin.
    pub const fn prefix(self) -> &'static str {
        match self {
            Origin::Cli => "cli",
            Origin::Sql => "sql",
            Origin::Http => "http",
            Origin::Batch => "batch",
            Origin::Agent => "agent",
        }
    }
}

/// The id shared by every session one outside request caused (a CLI invocation, a SQL statement, an HTTP
/// request): `<origin>-<woodland name>`, such as `sql-quiet-heron-0c1d2e3f4a5b6c7d`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct CallerId(String);

impl CallerId {
    /// A fresh caller id for the given origin.
    pub fn new(origin: Origin) -> Self {
        CallerId(format!("{}-{}", origin.prefix(), woodland_name()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CallerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        check_id(s)?;
        Ok(CallerId(s.to_owned()))
    }
}

impl TryFrom<String> for CallerId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        check_id(&s)?;
        Ok(CallerId(s))
    }
}

impl From<CallerId> for String {
    fn from(id: CallerId) -> String {
        id.0
    }
}

impl fmt::Display for CallerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn word_lists_have_no_duplicates() {
        assert_eq!(ADJECTIVES.iter().collect::<HashSet<_>>().len(), ADJECTIVES.len());
        assert_eq!(ANIMALS.iter().collect::<HashSet<_>>().len(), ANIMALS.len());
    }

    #[test]
    fn woodland_names_have_the_documented_shape() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let name = woodland_name_with(&mut rng);
            let hex = name.rsplit('-').next().unwrap();
            assert_eq!(hex.len(), HEX_DIGITS, "{name}");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
            assert!(name.parse::<SessionId>().is_ok(), "{name}");
            let parts: Vec<&str> = name.split('-').collect();
            assert_eq!(parts.len(), 3, "{name}");
            assert!(
                parts[..2]
                    .iter()
                    .all(|p| p.bytes().all(|b| b.is_ascii_lowercase())),
                "{name}"
            );
        }
    }

    #[test]
    fn many_ids_do_not_collide() {
        let ids: HashSet<String> = (0..100_000).map(|_| woodland_name()).collect();
        assert_eq!(ids.len(), 100_000);
    }

    #[test]
    fn user_ids_are_checked() {
        assert!("nightly-report-1".parse::<SessionId>().is_ok());
        assert!("".parse::<SessionId>().is_err());
        assert!("a/b".parse::<SessionId>().is_err());
        assert!("x".repeat(129).parse::<SessionId>().is_err());
        assert!(CallerId::new(Origin::Sql).as_str().starts_with("sql-"));
    }
}
