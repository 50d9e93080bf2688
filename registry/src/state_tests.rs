//! The registry's decisions, without Kafka or HTTP: plans applied as the log would replay them.

use crate::RegistryError;
use crate::state::{CandidateSchema, Registration, RegistryState, VersionRef};

fn schema(fields: &str) -> CandidateSchema {
    CandidateSchema::parse(&format!(r#"{{"type":"record","name":"E","fields":[{fields}]}}"#)).expect("valid schema")
}

fn register(
    state: &mut RegistryState,
    subject: &str,
    candidate: &CandidateSchema,
) -> Result<(u32, u32), RegistryError> {
    match state.plan_register(subject, candidate)? {
        Registration::Existing { id, version } => Ok((id, version)),
        Registration::New { id, version, entry } => {
            state.apply(&entry).expect("applies");
            Ok((id, version))
        }
    }
}

#[test]
fn ids_are_global_and_versions_per_subject() {
    let mut state = RegistryState::default();
    let v1 = schema(r#"{"name":"a","type":"string"}"#);
    let v2 = schema(r#"{"name":"a","type":"string"},{"name":"b","type":["null","int"],"default":null}"#);
    assert_eq!(register(&mut state, "s1", &v1), Ok((1, 1)));
    assert_eq!(
        register(&mut state, "s1", &v1),
        Ok((1, 1)),
        "registering again changes nothing"
    );
    assert_eq!(register(&mut state, "s1", &v2), Ok((2, 2)));
    assert_eq!(
        register(&mut state, "s2", &v2),
        Ok((2, 1)),
        "the same schema keeps its id in another subject"
    );
    assert_eq!(state.subjects(false), vec!["s1".to_owned(), "s2".to_owned()]);
    assert_eq!(
        state.usages_of(2, false),
        Ok(vec![("s1".to_owned(), 2), ("s2".to_owned(), 1)])
    );
    assert_eq!(state.lookup("s1", &v1, false).map(|v| v.version), Ok(1));
    assert!(matches!(
        state.lookup("s2", &v1, false),
        Err(RegistryError::SchemaNotFound(_))
    ));
}

#[test]
fn key_order_and_whitespace_do_not_make_a_new_schema() {
    let a =
        CandidateSchema::parse(r#"{"type":"record","name":"E","fields":[{"name":"a","type":"string"}]}"#).expect("a");
    let b = CandidateSchema::parse(
        "{ \"fields\": [ {\"type\": \"string\", \"name\": \"a\"} ],\n \"name\": \"E\", \"type\": \"record\" }",
    )
    .expect("b");
    assert_eq!(a.text, b.text);
}

#[test]
fn a_soft_deleted_version_leaves_the_compatibility_set_and_keeps_its_number() {
    let mut state = RegistryState::default();
    let v1 = schema(r#"{"name":"a","type":"string"}"#);
    let required_b = schema(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
    register(&mut state, "s", &v1).expect("v1");
    assert!(matches!(
        register(&mut state, "s", &required_b),
        Err(RegistryError::Incompatible { .. })
    ));

    let (deleted, entries) = state.plan_delete_subject("s", false).expect("soft delete");
    assert_eq!(deleted, vec![1]);
    for entry in &entries {
        state.apply(entry).expect("applies");
    }
    assert_eq!(
        state.versions("s", false),
        Err(RegistryError::SubjectNotFound("s".to_owned()))
    );
    assert_eq!(state.versions("s", true), Ok(vec![1]));
    // Nothing live to be compatible with: accepted, numbered after the deleted version.
    assert_eq!(register(&mut state, "s", &required_b), Ok((2, 2)));
    assert_eq!(state.version("s", VersionRef::Latest, false).map(|v| v.id), Ok(2));
    assert_eq!(
        state
            .plan_delete_version("s", VersionRef::Number(1), false)
            .map(|(v, _)| v),
        Err(RegistryError::VersionSoftDeleted {
            subject: "s".to_owned(),
            version: 1
        })
    );
    let (version, tombstone) = state
        .plan_delete_version("s", VersionRef::Number(1), true)
        .expect("permanent");
    assert_eq!(version, 1);
    state.apply(&tombstone).expect("applies");
    assert_eq!(state.versions("s", true), Ok(vec![2]));
}

#[test]
fn versions_parse_like_confluents() {
    assert_eq!(VersionRef::parse("latest"), Ok(VersionRef::Latest));
    assert_eq!(VersionRef::parse("-1"), Ok(VersionRef::Latest));
    assert_eq!(VersionRef::parse("3"), Ok(VersionRef::Number(3)));
    for bad in ["0", "-2", "x", "2147483648"] {
        assert_eq!(
            VersionRef::parse(bad),
            Err(RegistryError::InvalidVersion(bad.to_owned()))
        );
    }
}
