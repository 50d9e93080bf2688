//! Preparing records on several threads and chaining them in order seals exactly what sealing them
//! one by one does: the same events, hashes and rejections.

use super::{Harness, encoded, sample_event};
use crate::sealer::{Disposition, RawRecord, SchemaLookup, SealContext, prepare};
use crate::validate::RejectCode;

/// Good events of two tenants, a retry of an idempotency key, a record that is not Avro, one of an
/// unknown schema, and a record read again after the group was rewound.
fn records() -> Vec<(i64, String, Vec<u8>)> {
    let mut records = Vec::new();
    for n in 0..40_u32 {
        let tenant = ["acme", "globex"][n as usize % 2];
        let mut event = sample_event(tenant, n);
        if n % 10 == 3 {
            event.idempotency_key = Some(format!("retry-{}", n / 20));
        }
        records.push((i64::from(n), tenant.to_owned(), encoded(&event)));
    }
    records.push((40, "acme".to_owned(), b"not avro".to_vec()));
    let mut unknown = encoded(&sample_event("acme", 41));
    unknown[4] = 9;
    records.push((41, "acme".to_owned(), unknown));
    records.push((42, "acme".to_owned(), encoded(&sample_event("acme", 42))));
    records.push((5, "globex".to_owned(), encoded(&sample_event("globex", 5))));
    records
}

#[test]
fn records_prepared_on_two_threads_then_chained_seal_as_one_by_one() {
    let records = records();
    let mut one_by_one = Harness::new();
    let expected: Vec<Disposition> = records
        .iter()
        .map(|(offset, key, value)| one_by_one.handle(*offset, key, value))
        .collect();
    assert!(
        expected
            .iter()
            .any(|d| matches!(d, Disposition::Rejected(r) if r.code == RejectCode::Duplicate))
    );
    assert!(matches!(expected.last(), Some(Disposition::AlreadyHandled)));

    let mut parallel = Harness::new();
    let settings = parallel.sealer.settings().clone();
    let (policy, reader) = (&parallel.policy, &parallel.reader);
    let lookup = |id| {
        if id == 1 {
            SchemaLookup::Found(reader)
        } else {
            SchemaLookup::Unknown
        }
    };
    let (first, second) = records.split_at(records.len() / 2);
    let prepare_all = |part: &[(i64, String, Vec<u8>)]| {
        let mut tokenizer = parallel.tokenizer.clone();
        let mut context = SealContext {
            policy,
            tokenizer: &mut tokenizer,
            now_ms: super::NOW,
            key_id: "k1",
        };
        part.iter()
            .map(|(offset, key, value)| {
                let record = RawRecord {
                    offset: *offset,
                    key: Some(key.as_bytes()),
                    value: Some(value),
                };
                prepare(&settings, &record, lookup, &mut context)
            })
            .collect::<Vec<_>>()
    };
    let prepared: Vec<_> = std::thread::scope(|scope| {
        let other = scope.spawn(|| prepare_all(second));
        let mut prepared = prepare_all(first);
        prepared.extend(other.join().expect("the preparing thread"));
        prepared
    });
    let mut tokenizer = parallel.tokenizer.clone();
    let mut context = SealContext {
        policy: &parallel.policy,
        tokenizer: &mut tokenizer,
        now_ms: super::NOW,
        key_id: "k1",
    };
    let chained: Vec<Disposition> = records
        .iter()
        .zip(prepared)
        .map(|((offset, _, _), prepared)| parallel.sealer.handle_prepared(*offset, prepared, &mut context))
        .collect();
    assert_eq!(chained, expected);
}
