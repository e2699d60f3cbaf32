//! The startup phase: protocol negotiation, authentication (trust on loopback, otherwise a cleartext
//! password that must be an API key of the store), the server parameters, BackendKeyData and the
//! connection's cancel handle.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, METADATA_APPLICATION_NAME,
    METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use rvbbit_core::Timestamp;
use rvbbit_store::Store;
use sha2::{Digest, Sha256};

use super::errors::state;

/// What `server_version` says (clients parse the leading number).
pub fn server_version() -> String {
    format!("16.0 (rvbbit {})", env!("CARGO_PKG_VERSION"))
}

/// The ParameterStatus messages sent after authentication.
#[derive(Debug)]
pub(crate) struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let mut p: HashMap<String, String> = defaults().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        if let Some(app) = client.metadata().get(METADATA_APPLICATION_NAME) {
            p.insert("application_name".into(), app.clone());
        }
        if let Some(user) = client.metadata().get(METADATA_USER) {
            p.insert("session_authorization".into(), user.clone());
        }
        Some(p)
    }
}

/// The PostgreSQL parameters of a fresh connection (ParameterStatus, `SHOW`, `pg_settings`).
pub(crate) fn defaults() -> Vec<(&'static str, String)> {
    vec![
        ("server_version", server_version()),
        ("server_version_num", "160000".into()),
        ("server_encoding", "UTF8".into()),
        ("client_encoding", "UTF8".into()),
        ("DateStyle", "ISO, MDY".into()),
        ("TimeZone", "UTC".into()),
        ("IntervalStyle", "postgres".into()),
        ("integer_datetimes", "on".into()),
        ("standard_conforming_strings", "on".into()),
        ("is_superuser", "on".into()),
        ("in_hot_standby", "off".into()),
        ("default_transaction_read_only", "off".into()),
        ("search_path", "public".into()),
        ("application_name", String::new()),
        ("extra_float_digits", "1".into()),
        ("transaction_isolation", "read committed".into()),
        ("max_identifier_length", "63".into()),
        ("statement_timeout", "0".into()),
        ("default_table_access_method", "heap".into()),
    ]
}

/// How clients authenticate.
#[derive(Clone)]
pub(crate) enum Auth {
    /// Anyone (loopback binds).
    Trust,
    /// A cleartext password that is an active API key of this store.
    ApiKeys(Arc<dyn Store>),
}

/// The startup handler: one per server, shared by every connection.
pub(crate) struct Startup {
    pub(crate) auth: Auth,
    pub(crate) manager: Arc<ConnectionManager>,
    pub(crate) pids: Arc<RandomPidSecretKeyGenerator>,
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(startup) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                let (pid, key) = self.pids.generate(&*client);
                client.set_pid_and_secret_key(pid, key.clone());
                let (handle, guard) = self.manager.register(pid, key);
                client
                    .session_extensions()
                    .insert::<Arc<ConnectionHandle>>(handle);
                client.session_extensions().insert::<ConnectionGuard>(guard);
                match self.auth {
                    Auth::Trust => finish_authentication(client, &Parameters).await?,
                    Auth::ApiKeys(_) => {
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::CleartextPassword,
                            ))
                            .await?;
                        client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(family) => {
                let Auth::ApiKeys(store) = &self.auth else {
                    return Ok(());
                };
                let password = family.into_password()?;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                let hash = hex::encode(Sha256::digest(password.password.trim().as_bytes()));
                match store.key_authenticate(&hash, Timestamp::now()).await {
                    Ok(Some(key)) => {
                        tracing::debug!(key_id = %key.key_id, user = %user, "postgresql client authenticated");
                        finish_authentication(client, &Parameters).await?;
                    }
                    Ok(None) => {
                        let mut info = ErrorInfo::new(
                            "FATAL".into(),
                            state::INVALID_PASSWORD.into(),
                            format!("password authentication failed for user \"{user}\""),
                        );
                        info.hint = Some(
                            "the password must be an API key of this server: create one with `rvbbit keys create \
                             --name NAME` and connect with it as the password"
                                .into(),
                        );
                        return Err(PgWireError::UserError(Box::new(info)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "API key lookup failed");
                        let mut info = ErrorInfo::new(
                            "FATAL".into(),
                            "58000".into(),
                            "the server cannot check the password: the store is not readable".into(),
                        );
                        info.hint = Some("see the server's log; check the store with `rvbbit doctor`".into());
                        return Err(PgWireError::UserError(Box::new(info)));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
