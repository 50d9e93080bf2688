//! The Avro contracts: the hand-written codec against apache-avro, schema evolution, and the
//! sealed record round trip.

use super::*;

#[test]
fn the_sealed_schema_embeds_the_event_contract_unchanged() {
    let contract: serde_json::Value = serde_json::from_str(AUDIT_EVENT_SCHEMA).expect("json");
    let sealed: serde_json::Value = serde_json::from_str(SEALED_RECORD_SCHEMA).expect("json");
    let mut embedded = sealed[0]["fields"][0]["type"].clone();
    let mut expected = contract;
    // Only the record's doc differs: it describes the redacted form.
    embedded["doc"] = serde_json::Value::Null;
    expected["doc"] = serde_json::Value::Null;
    assert_eq!(embedded, expected);
    sealed_record_schema();
}

#[test]
fn the_hand_written_encoder_agrees_with_apache_avro() {
    let event = sample_event("acme", 1);
    let bytes = encoded(&event);
    let body = Framed::parse(&bytes).expect("framed").body;
    let value = avro_read(audit_event_schema(), body);
    let Value::Record(fields) = value else { panic!("record") };
    assert_eq!(
        fields[0],
        ("event_id".to_owned(), Value::String(event.event_id.clone()))
    );
    assert_eq!(
        fields[16].1,
        Value::Union(1, Box::new(Value::String("sess-9".to_owned())))
    );

    let plan = identity(audit_event_schema()).expect("plan");
    let decoded = audit_event_from_val(decode_all(&plan, body).expect("decodes")).expect("shape");
    assert_eq!(decoded, event);
    assert!(matches!(
        EventReader::for_writer(audit_event_schema()),
        Ok(EventReader::Contract)
    ));
    assert_eq!(decode_audit_event(body), Ok(event));
}

#[test]
fn an_older_producer_and_a_newer_one_both_decode_with_the_current_contract() {
    let v1 = Schema::parse_str(include_str!("../../../schemas/history/audit-event.v1.avsc")).expect("v1");
    let mut v1_record = Record::new(&v1).expect("record");
    let event = sample_event("acme", 2);
    let plan_current = identity(audit_event_schema()).expect("plan");
    let current_bytes = encoded(&event);
    let current_value = avro_read(audit_event_schema(), Framed::parse(&current_bytes).expect("f").body);
    let Value::Record(fields) = current_value else {
        panic!("record")
    };
    for (name, value) in fields.into_iter().filter(|(name, _)| name != "session_id") {
        v1_record.put(&name, value);
    }
    let v1_body = GenericDatumWriter::builder(&v1)
        .build()
        .expect("writer")
        .write_value_to_vec(v1_record)
        .expect("encodes with v1");
    let reader = EventReader::for_writer(&v1).expect("v1 is readable");
    assert!(matches!(reader, EventReader::Resolved(_)));
    let from_v1 = reader.read(&v1_body).expect("decodes");
    assert_eq!(from_v1.session_id, None);
    assert_eq!(from_v1.actor, event.actor);

    // A producer ahead of this contract: its extra field is kept, not lost.
    let mut v3_json: serde_json::Value = serde_json::from_str(AUDIT_EVENT_SCHEMA).expect("json");
    v3_json["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({"name": "device_id", "type": ["null", "string"], "default": null}));
    let v3 = Schema::parse(&v3_json).expect("v3");
    let mut v3_body = Framed::parse(&current_bytes).expect("f").body.to_vec();
    v3_body.extend_from_slice(&[2, 6, b'd', b'-', b'7']);
    let plan = compile(&v3, audit_event_schema(), true).expect("v3 is readable");
    let from_v3 = audit_event_from_val(decode_all(&plan, &v3_body).expect("decodes")).expect("shape");
    assert!(
        from_v3
            .attributes
            .contains(&("schema.device_id".to_owned(), "d-7".to_owned()))
    );
    assert_eq!(
        audit_event_from_val(decode_all(&plan_current, Framed::parse(&current_bytes).expect("f").body).expect("d"))
            .expect("s"),
        event
    );
}

#[test]
fn sealed_records_round_trip_through_the_sealed_contract() {
    let signer = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().expect("key")).expect("signer");
    let mut h = Harness::new();
    let sealed = h.seal(0, &sample_event("acme", 1));
    let checkpoint = h.sealer.checkpoint(&signer, 3, NOW);
    let plan = identity(sealed_record_schema()).expect("plan");
    for record in [
        SealedRecord::Event(Box::new(sealed)),
        SealedRecord::Checkpoint(Box::new(checkpoint)),
    ] {
        let mut writer = Writer::default();
        encode_sealed_record(&record, &mut writer);
        let bytes = writer.into_bytes();
        avro_read(sealed_record_schema(), &bytes);
        let decoded = sealed_record_from_val(decode_all(&plan, &bytes).expect("decodes")).expect("shape");
        assert_eq!(decoded, record);
    }
}
