//! The audit event as services publish it (`schemas/audit-event.avsc`).

/// One audit event. Field meanings are documented on the Avro contract.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEvent {
    pub event_id: String,
    pub tenant_id: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub occurred_at: i64,
    pub action: String,
    pub actor: Actor,
    pub resource: Resource,
    pub outcome: Outcome,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub policy_version: Option<String>,
    pub evidence: Vec<Evidence>,
    pub changes: Vec<Change>,
    /// In the order the producer wrote them; the canonical encoding sorts them.
    pub attributes: Vec<(String, String)>,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub id: String,
    pub kind: ActorType,
    pub display_name: Option<String>,
    pub authority: Option<String>,
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActorType {
    User,
    Service,
    System,
    SupportAgent,
    ApiClient,
    #[default]
    Unknown,
}

impl ActorType {
    /// In the order of the Avro enum's symbols.
    pub const ALL: [Self; 6] = [
        Self::User,
        Self::Service,
        Self::System,
        Self::SupportAgent,
        Self::ApiClient,
        Self::Unknown,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            Self::User => "USER",
            Self::Service => "SERVICE",
            Self::System => "SYSTEM",
            Self::SupportAgent => "SUPPORT_AGENT",
            Self::ApiClient => "API_CLIENT",
            Self::Unknown => "UNKNOWN",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.symbol() == symbol)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resource {
    pub kind: String,
    pub id: String,
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub status: OutcomeStatus,
    pub reason_code: Option<String>,
    pub reason_text: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutcomeStatus {
    #[default]
    Success,
    Failure,
    Denied,
}

impl OutcomeStatus {
    /// In the order of the Avro enum's symbols.
    pub const ALL: [Self; 3] = [Self::Success, Self::Failure, Self::Denied];

    pub fn symbol(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Denied => "DENIED",
        }
    }

    pub fn from_symbol(symbol: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.symbol() == symbol)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evidence {
    pub kind: String,
    pub uri: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}
