//! Chat identities and integrations kept in SQLite (issue 20).
