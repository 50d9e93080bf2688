//! Handing a token to librdkafka.
//!
//! rdkafka sets tokens only from its poll loops, when librdkafka queues a refresh event. A client
//! whose queue nobody polls (an admin client, a metadata probe) would wait for ever for its first
//! token, so sealtrail sets that one itself right after creating the client; later refreshes
//! come through the poll loops (`KafkaContext::generate_oauth_token`).
//!
//! This is the third module of the workspace allowed `unsafe`: rdkafka keeps its own call to
//! `rd_kafka_oauthbearer_set_token` private.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char};

use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::types::RDKafkaErrorCode;

use super::token::IssuedToken;

/// Sets `token` as `client`'s OAUTHBEARER token; librdkafka's reason when it refuses it.
pub(crate) fn set_token<C: ClientContext>(client: &Client<C>, token: &IssuedToken) -> Result<(), String> {
    let value = CString::new(token.value.as_str()).map_err(|_| "the token holds a NUL byte".to_owned())?;
    let principal =
        CString::new(token.principal.as_str()).map_err(|_| "the token's principal holds a NUL byte".to_owned())?;
    // librdkafka's reason text may quote the token, so only its error code is reported.
    let mut reason = [0 as c_char; 512];
    // SAFETY: the client pointer is valid while `client` is borrowed; librdkafka copies the
    // strings, reads no extensions (null, 0) and writes at most `reason.len()` bytes, NUL
    // terminated, into `reason`.
    let code = unsafe {
        rdkafka_sys::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.expires_at_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            reason.as_mut_ptr(),
            reason.len(),
        )
    };
    match RDKafkaErrorCode::from(code) {
        RDKafkaErrorCode::NoError => Ok(()),
        refused => Err(refused.to_string()),
    }
}
