//! Which loopback ports the local stack listens on.

use std::net::{Ipv4Addr, TcpListener};

use serde::{Deserialize, Serialize};

use crate::{DataDir, LocalError};

/// How the ports of a stack are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// The well-known ports (9092, 8123, 9000, 8081, 8080), or those recorded by an earlier start.
    Standard,
    /// Free ports picked by the system, recorded so a restart keeps its addresses when it can.
    Auto,
}

/// The ports a stack listens on; kept in `<data-dir>/ports.json` across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackPorts {
    pub kafka: u16,
    pub clickhouse_http: u16,
    pub clickhouse_tcp: u16,
    pub registry: u16,
    /// Files recorded before the API existed have no entry: it then gets the standard port.
    #[serde(default = "standard_api_port")]
    pub api: u16,
    /// Likewise for the ingest edge.
    #[serde(default = "standard_ingest_port")]
    pub ingest: u16,
}

fn standard_api_port() -> u16 {
    StackPorts::STANDARD.api
}

fn standard_ingest_port() -> u16 {
    StackPorts::STANDARD.ingest
}

/// Ports named on the command line; they win over recorded and standard ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortOverrides {
    pub kafka: Option<u16>,
    pub clickhouse_http: Option<u16>,
    pub clickhouse_tcp: Option<u16>,
    pub registry: Option<u16>,
    pub api: Option<u16>,
    pub ingest: Option<u16>,
}

impl StackPorts {
    pub const STANDARD: Self = Self {
        kafka: 9092,
        clickhouse_http: 8123,
        clickhouse_tcp: 9000,
        registry: 8081,
        api: 8080,
        ingest: 8090,
    };

    /// Decides the ports for a start on `data_dir` and records them there.
    pub fn resolve(data_dir: &DataDir, choice: PortChoice, overrides: PortOverrides) -> Result<Self, LocalError> {
        let path = data_dir.ports_file();
        let recorded: Option<Self> = match std::fs::read_to_string(&path) {
            Ok(text) => Some(serde_json::from_str(&text).map_err(|e| LocalError::Corrupt {
                path: path.clone(),
                reason: format!("{e}; it only records ports, so deleting it is safe"),
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(LocalError::io("read", &path)(e)),
        };
        let base = match (recorded, choice) {
            (Some(recorded), _) => recorded,
            (None, PortChoice::Standard) => Self::STANDARD,
            (None, PortChoice::Auto) => Self::free()?,
        };
        let slots: [(&'static str, &'static str, u16, Option<u16>); 6] = [
            ("the Kafka broker", "--kafka-port", base.kafka, overrides.kafka),
            (
                "ClickHouse HTTP",
                "--clickhouse-port",
                base.clickhouse_http,
                overrides.clickhouse_http,
            ),
            (
                "ClickHouse native protocol",
                "--clickhouse-tcp-port",
                base.clickhouse_tcp,
                overrides.clickhouse_tcp,
            ),
            (
                "the schema registry",
                "--registry-port",
                base.registry,
                overrides.registry,
            ),
            ("the API", "--api-port", base.api, overrides.api),
            ("the ingest edge", "--ingest-port", base.ingest, overrides.ingest),
        ];
        let mut chosen = [0_u16; 6];
        for (index, (what, flag, base_port, override_port)) in slots.into_iter().enumerate() {
            let wanted = override_port.unwrap_or(base_port);
            let free = is_free(wanted) && !chosen[..index].contains(&wanted);
            chosen[index] = match (free, choice, override_port) {
                (true, _, _) => wanted,
                (false, PortChoice::Auto, None) => free_port(&chosen[..index])?,
                (false, _, _) => {
                    return Err(LocalError::PortTaken {
                        what,
                        port: wanted,
                        flag,
                    });
                }
            };
        }
        let ports = Self {
            kafka: chosen[0],
            clickhouse_http: chosen[1],
            clickhouse_tcp: chosen[2],
            registry: chosen[3],
            api: chosen[4],
            ingest: chosen[5],
        };
        let text = serde_json::to_string_pretty(&ports).expect("ports serialize");
        std::fs::write(&path, text).map_err(LocalError::io("write", &path))?;
        Ok(ports)
    }

    fn free() -> Result<Self, LocalError> {
        let mut taken = Vec::with_capacity(6);
        for _ in 0..6 {
            taken.push(free_port(&taken)?);
        }
        Ok(Self {
            kafka: taken[0],
            clickhouse_http: taken[1],
            clickhouse_tcp: taken[2],
            registry: taken[3],
            api: taken[4],
            ingest: taken[5],
        })
    }
}

impl StackPorts {
    /// A free loopback port for something behind the stack (a TLS front's upstream, a
    /// processor's metrics) that is none of the stack's own ports nor any in `also_avoid`.
    ///
    /// A restart resolves its recorded ports before any of its services listens, so a port picked
    /// by the system at that moment may well be the API's, which starts last.
    pub fn free_internal_port(&self, also_avoid: &[u16]) -> Result<u16, LocalError> {
        let mut avoid = self.all().to_vec();
        avoid.extend_from_slice(also_avoid);
        free_port(&avoid)
    }

    fn all(&self) -> [u16; 6] {
        [
            self.kafka,
            self.clickhouse_http,
            self.clickhouse_tcp,
            self.registry,
            self.api,
            self.ingest,
        ]
    }
}

fn is_free(port: u16) -> bool {
    port != 0 && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn free_port(avoid: &[u16]) -> Result<u16, LocalError> {
    first_not_avoided(avoid, || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .map_err(LocalError::io("bind a free port on", "127.0.0.1"))
    })
}

fn first_not_avoided(
    avoid: &[u16],
    mut system_pick: impl FnMut() -> Result<u16, LocalError>,
) -> Result<u16, LocalError> {
    for _ in 0..64 {
        let port = system_pick()?;
        if !avoid.contains(&port) {
            return Ok(port);
        }
    }
    Err(LocalError::io("find a free port on", "127.0.0.1")(
        std::io::Error::other("the system kept offering ports the stack already uses"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ports_file_from_before_the_api_gets_the_standard_api_port() {
        let recorded: StackPorts =
            serde_json::from_str(r#"{"kafka": 1, "clickhouse_http": 2, "clickhouse_tcp": 3, "registry": 4}"#)
                .expect("old file parses");
        assert_eq!((recorded.api, recorded.ingest), (8080, 8090));
    }

    #[test]
    fn a_taken_port_is_an_error_naming_the_flag_unless_auto() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("opens");
        let holder = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let taken = holder.local_addr().expect("addr").port();
        let overrides = PortOverrides {
            kafka: Some(taken),
            ..PortOverrides::default()
        };
        let error = StackPorts::resolve(&data, PortChoice::Standard, overrides).expect_err("taken");
        assert!(error.to_string().contains(&format!("port {taken}")), "{error}");
        assert!(error.to_string().contains("--kafka-port"), "{error}");

        std::fs::remove_file(data.ports_file()).ok();
        let first = StackPorts::resolve(&data, PortChoice::Auto, PortOverrides::default()).expect("auto");
        let again = StackPorts::resolve(&data, PortChoice::Auto, PortOverrides::default()).expect("auto");
        assert_eq!(first, again, "a restart keeps its recorded ports");
        let all = first.all();
        let mut distinct = all.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 6, "{all:?}");
    }

    #[test]
    fn an_internal_port_is_never_one_of_the_stacks_ports() {
        let ports = StackPorts::STANDARD;
        // The system offers the API's port first (free, since the API starts last), then the
        // port of an earlier internal listener, then a new one.
        let mut offers = [ports.api, 40_001, 40_002].into_iter();
        let picked = first_not_avoided(&[ports.all().as_slice(), &[40_001]].concat(), || {
            Ok(offers.next().expect("an offer"))
        })
        .expect("a port");
        assert_eq!(picked, 40_002);

        let real = ports.free_internal_port(&[]).expect("a free port");
        assert!(!ports.all().contains(&real), "{real}");
    }
}
