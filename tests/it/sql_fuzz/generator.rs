//! Inputs nobody on the team wrote: SQL generated from the grammar the check accepts (with the
//! operators, literals, quoting and comments where parsers disagree), and mutations of the attack
//! corpus.

use rand::rngs::StdRng;
use std::fmt::Write as _;

use rand::Rng;

/// Each list: what the check should accept first, then what it should refuse (or ClickHouse
/// fail on); the hostile part is picked one time in forty (an input makes dozens of picks).
const COLUMNS: (&[&str], &[&str]) = (
    &[
        "seq",
        "action",
        "actor_id",
        "tenant_id",
        "outcome",
        "occurred_at",
        "resource_id",
        "reason_text",
        "hash",
        "`seq`",
    ],
    &[
        "e.seq",
        "number",
        "tenant_heads",
        "layout_epoch",
        "closes_epoch",
        "labels",
        "attributes['k']",
        "\"action\"",
        "sealtrail.events.seq",
    ],
);
const STRINGS: (&[&str], &[&str]) = (
    &[
        "''",
        "'--'",
        "'/*'",
        "'*/'",
        "'#'",
        "'# x'",
        "'it''s'",
        "'`'",
        "'\"'",
        "'; DROP TABLE events'",
        "'é'",
        "'user.login'",
        "'a'' UNION SELECT 1 --'",
        "'{sealtrail_tenant:String}'",
        "'?'",
        "'-- '",
    ],
    &["'\n'", "'\t'", "'\\'", "'\\''", "'\u{1}'", "'\r'", "'\n--'"],
);
const NUMBERS: (&[&str], &[&str]) = (
    &["0", "1", "42", "2.5", "1e3", "1e-3", "007", "18446744073709551615"],
    &["0x1F", "1_000", ".5", "1.", "18446744073709551616", "0b101"],
);
const UNARY: (&[&str], &[&str]) = (&["-", "- ", "+", "NOT ", "-(", "NOT -"], &["~", "!", "@"]);
const BINARY: (&[&str], &[&str]) = (
    &[
        "+", "-", "*", "/", "%", "=", "==", "!=", "<>", "<", ">", "<=", ">=", " AND ", " OR ", " LIKE ", " || ", "- -",
        "-/**/-",
    ],
    &["--", "#", "->", "::"],
);
const FUNCTIONS: (&[&str], &[&str]) = (
    &[
        "count", "sum", "lower", "upper", "length", "toString", "abs", "max", "min", "any", "coalesce", "toDate",
        "isNull",
    ],
    &[
        "file",
        "url",
        "dictGet",
        "getSetting",
        "currentDatabase",
        "hostName",
        "remote",
        "getClientHTTPHeader",
        "arrayJoin",
    ],
);
const TABLES: (&[&str], &[&str]) = (
    &[
        "events",
        "checkpoints",
        "events AS e",
        "events e",
        "checkpoints AS c",
        "`events`",
    ],
    &[
        "\"events\"",
        "EVENTS",
        "system.one",
        "sealtrail.events",
        "tenant_checkpoints",
        "event_entries",
        "api_keys",
        "numbers(3)",
        "merge('db', '.*')",
        "recent",
    ],
);
const SEPARATORS: &[&str] = &[" ", " ", " ", "\n", "\t", " /* c */ ", " -- c\n", "  ", "/**/"];
const INJECTIONS: &[&str] = &[
    "--",
    "/*",
    "*/",
    "'",
    "`",
    "\"",
    "\n",
    "-",
    "- -",
    "#",
    ";",
    "\\",
    "{",
    "}",
    "?",
    "$$",
    "(",
    ")",
    ",",
    "e'",
    " UNION ALL SELECT * FROM system.tables",
    " UNION ALL SELECT tenant_id FROM sealtrail.events",
    "sealtrail.api_keys",
    " FORMAT CSV",
    " SETTINGS readonly=0",
    " INTO OUTFILE '/tmp/x'",
    "{sealtrail_tenant:String}",
    "\u{0}",
    "\r",
];

/// The attack corpus the mutations start from: the review's requests and the suites' attacks.
pub const CORPUS: &[&str] = &[
    "SELECT - - 1, '\ntenant_id, count() AS n FROM sealtrail.events GROUP BY tenant_id --' FROM events",
    "SELECT seq FROM events WHERE seq = - - 1 OR action = '\nOR 1 UNION ALL SELECT tenant_id FROM sealtrail.events --'",
    "SELECT 'x\\\\', ' UNION ALL SELECT secret_sha256 FROM sealtrail.api_keys -- ' FROM events",
    "SELECT 1 AS `x\\`, ` UNION ALL SELECT toString(tuple(*)) FROM sealtrail.events -- ` FROM events",
    "SELECT * FROM events WHERE action = 'a'' UNION SELECT * FROM system.tables --'",
    "SELECT count() FROM events WHERE (tenant_id, seq, action) IN sealtrail.events",
    "WITH events AS (SELECT * FROM system.tables) SELECT * FROM events",
    "SELECT * FROM events -- WHERE tenant_id = 'x'\n UNION ALL SELECT * FROM system.tables",
    "SELECT number, tenant_heads FROM checkpoints ORDER BY number DESC LIMIT 1",
    "WITH recent AS (SELECT * FROM events WHERE seq > 10) SELECT count() FROM recent",
    "SELECT a.seq FROM events a JOIN events b ON a.seq = b.seq",
    "SELECT (SELECT max(seq) FROM events) AS head",
];

pub struct Generator {
    rng: StdRng,
}

impl Generator {
    pub fn new(rng: StdRng) -> Self {
        Self { rng }
    }

    /// The next input: three in four generated, one in four a mutated attack.
    pub fn next_input(&mut self) -> String {
        if self.rng.random_ratio(1, 4) {
            self.mutated()
        } else {
            self.query(0)
        }
    }

    fn pick(&mut self, from: &[&'static str]) -> &'static str {
        from[self.rng.random_range(0..from.len())]
    }

    /// Mostly from the accepted part, one time in forty from the hostile part (an input makes
    /// dozens of picks).
    fn pick_mostly_safe(&mut self, (safe, hostile): (&[&'static str], &[&'static str])) -> &'static str {
        if self.rng.random_ratio(1, 40) {
            self.pick(hostile)
        } else {
            self.pick(safe)
        }
    }

    fn sep(&mut self) -> &'static str {
        if self.rng.random_ratio(1, 8) {
            self.pick(SEPARATORS)
        } else {
            " "
        }
    }

    fn query(&mut self, depth: u32) -> String {
        let mut sql = String::new();
        if depth == 0 && self.rng.random_ratio(1, 6) {
            let inner = self.select(depth + 1, "events", true);
            let _ = write!(sql, "WITH recent AS ({inner}){}", self.sep());
            let outer = self.select(depth + 1, "recent", true);
            sql.push_str(&outer);
            return sql;
        }
        let table = self.pick_mostly_safe(TABLES);
        let union = depth < 2 && self.rng.random_ratio(1, 6);
        sql.push_str(&self.select(depth, table, !union));
        if union {
            let other = self.query(depth + 1);
            let _ = write!(sql, "{}UNION ALL{}{other}", self.sep(), self.sep());
        }
        sql
    }

    /// One SELECT; `last` when nothing follows it (ORDER BY and LIMIT may end it).
    fn select(&mut self, depth: u32, default_table: &str, last: bool) -> String {
        let mut sql = format!("SELECT{}", self.sep());
        let columns = self.rng.random_range(1..3);
        let projections: Vec<String> = (0..columns).map(|_| self.expr(depth, 0)).collect();
        sql.push_str(&projections.join(", "));
        let table = if self.rng.random_ratio(1, 8) {
            self.pick_mostly_safe(TABLES).to_owned()
        } else if depth < 2 && self.rng.random_ratio(1, 6) {
            format!("({}) AS sub", self.query(depth + 1))
        } else {
            default_table.to_owned()
        };
        let _ = write!(sql, "{}FROM{}{table}", self.sep(), self.sep());
        if self.rng.random_ratio(1, 6) {
            let other = self.pick(&["events", "checkpoints"]);
            let on = self.expr(depth, 1);
            let _ = write!(sql, " JOIN {other} AS j ON {on}");
        }
        if self.rng.random_ratio(1, 2) {
            let condition = self.expr(depth, 0);
            let _ = write!(sql, "{}WHERE{}{condition}", self.sep(), self.sep());
        }
        if self.rng.random_ratio(1, 5) {
            let key = self.expr(depth, 2);
            let _ = write!(sql, " GROUP BY {key}");
        }
        if last && self.rng.random_ratio(1, 5) {
            let key = self.expr(depth, 2);
            let _ = write!(sql, " ORDER BY {key} DESC");
        }
        if last && self.rng.random_ratio(1, 4) {
            let _ = write!(sql, " LIMIT {}", self.rng.random_range(0..100));
        }
        sql
    }

    fn expr(&mut self, depth: u32, nesting: u32) -> String {
        let choice = if nesting > 3 {
            self.rng.random_range(0..3)
        } else {
            self.rng.random_range(0..10)
        };
        match choice {
            0 => self.pick_mostly_safe(COLUMNS).to_owned(),
            1 => self.pick_mostly_safe(STRINGS).to_owned(),
            2 => self.pick_mostly_safe(NUMBERS).to_owned(),
            3 | 4 => {
                let operand = self.expr(depth, nesting + 1);
                let operator = self.pick_mostly_safe(UNARY);
                if operator.ends_with('(') {
                    format!("{operator}{operand})")
                } else {
                    format!("{operator}{operand}")
                }
            }
            5 | 6 => {
                let (left, right) = (self.expr(depth, nesting + 1), self.expr(depth, nesting + 1));
                let operator = self.pick_mostly_safe(BINARY);
                format!("{left}{}{operator}{}{right}", self.sep(), self.sep())
            }
            7 => {
                let function = self.pick_mostly_safe(FUNCTIONS);
                let argument = self.expr(depth, nesting + 1);
                format!("{function}({argument})")
            }
            8 if depth == 0 => {
                let column = self.pick(&COLUMNS.0[..4]);
                let inner = self.query(depth + 1);
                format!("{column} IN ({inner})")
            }
            _ => format!("({})", self.expr(depth, nesting + 1)),
        }
    }

    fn mutated(&mut self) -> String {
        let mut text: Vec<char> = self.pick(CORPUS).chars().collect();
        for _ in 0..self.rng.random_range(1..4) {
            if text.is_empty() {
                break;
            }
            let at = self.rng.random_range(0..=text.len());
            match self.rng.random_range(0..4) {
                0 => {
                    let injection: Vec<char> = self.pick(INJECTIONS).chars().collect();
                    text.splice(at..at, injection);
                }
                1 => {
                    let end = (at + self.rng.random_range(1..8)).min(text.len());
                    text.drain(at..end);
                }
                2 => {
                    let end = (at + self.rng.random_range(1..12)).min(text.len());
                    let copy: Vec<char> = text[at..end].to_vec();
                    text.splice(at..at, copy);
                }
                _ => {
                    let other = self.rng.random_range(0..text.len());
                    let at = at.min(text.len() - 1);
                    text.swap(at, other);
                }
            }
        }
        text.into_iter().collect()
    }
}

/// A generator whose inputs are the same on every run with the same seed.
pub fn seeded(seed: u64) -> Generator {
    Generator::new(<StdRng as rand::SeedableRng>::seed_from_u64(seed))
}
