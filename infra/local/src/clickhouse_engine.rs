//! The ClickHouse launcher: runs inside its own process (`sealtrail clickhouse-server`) and turns
//! the ClickHouse engine library into a real HTTP and native-protocol server on loopback.
//!
//! This is the one module of the workspace allowed to use `unsafe`: loading a C library and
//! calling into it cannot be expressed otherwise. Everything unsafe is confined to `serve`.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};

/// The query that keeps the engine serving: it starts the listeners, then blocks for ~30 years.
const SERVE_QUERY: &str = "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; \
     SELECT sleepEachRow(1) FROM numbers(1000000000) SETTINGS max_block_size = 1 FORMAT Null";

/// Where and how the engine serves.
#[derive(Debug, Clone)]
pub struct EngineServerConfig {
    pub library: PathBuf,
    pub data_dir: PathBuf,
    pub http_port: u16,
    pub tcp_port: u16,
    /// The main configuration (users, access control); without one the engine has a single
    /// password-less `default` user that may do anything.
    pub config_file: Option<PathBuf>,
    /// The administrator's (`ADMIN_USER`) password, which the launcher logs in with to see
    /// running inserts.
    pub admin_password_file: Option<PathBuf>,
}

type QueryCmdline = unsafe extern "C" fn(c_int, *mut *mut c_char) -> *mut c_void;
type ResultError = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type SetSignalHandlers = unsafe extern "C" fn(c_int);

/// Serves ClickHouse until SIGTERM, SIGINT or SIGHUP, then lets running inserts finish and exits the
/// process. Returns only with a description of why the engine could not start.
pub fn serve(config: &EngineServerConfig) -> String {
    // Block the stop signals before the engine creates its threads (they inherit the mask), so
    // only the watcher thread below ever sees them and the engine cannot swallow them.
    let mut stop_signals = SigSet::empty();
    stop_signals.add(Signal::SIGTERM);
    stop_signals.add(Signal::SIGINT);
    stop_signals.add(Signal::SIGHUP);
    if let Err(error) = stop_signals.thread_block() {
        return format!("cannot block stop signals: {error}");
    }
    let http_port = config.http_port;
    let admin_password = config
        .admin_password_file
        .as_deref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .map(|text| text.trim().to_owned());
    std::thread::spawn(move || {
        let signal = stop_signals
            .wait()
            .map_or_else(|e| e.to_string(), |s| s.as_str().to_owned());
        eprintln!("clickhouse-server: {signal} received; letting running inserts finish, then stopping");
        wait_for_running_inserts(http_port, admin_password.as_deref());
        exit_now(0);
    });

    let mut args = vec!["clickhouse".to_owned()];
    if let Some(config_file) = &config.config_file {
        args.push(format!("--config-file={}", config_file.display()));
    }

    args.extend([
        format!("--path={}", with_trailing_slash(&config.data_dir)),
        format!("--http_port={}", config.http_port),
        format!("--tcp_port={}", config.tcp_port),
        "--listen_host=127.0.0.1".to_owned(),
        format!("--query={SERVE_QUERY}"),
    ]);
    let Ok(owned_args) = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return "the data path contains a NUL byte".to_owned();
    };
    let mut arg_pointers: Vec<*mut c_char> = owned_args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    let Ok(arg_count) = c_int::try_from(arg_pointers.len()) else {
        return "too many arguments".to_owned();
    };

    // SAFETY: the library is the pinned ClickHouse engine build; the symbols are looked up with the
    // C signatures its header declares (chdb.h), the argument strings outlive the call, and the
    // library is never unloaded (the process exits from inside this function or right after).
    unsafe {
        let library = match libloading::Library::new(&config.library) {
            Ok(library) => library,
            Err(error) => return format!("cannot load {}: {error}", config.library.display()),
        };
        // Without this the engine's crash handlers sleep for minutes before the process dies.
        if let Ok(set_handlers) = library.get::<SetSignalHandlers>(b"chdb_set_signal_handlers_enabled\0") {
            set_handlers(0);
        }
        let query: libloading::Symbol<'_, QueryCmdline> = match library.get(b"chdb_query_cmdline\0") {
            Ok(symbol) => symbol,
            Err(error) => {
                return format!(
                    "{} is not the ClickHouse engine library: {error}",
                    config.library.display()
                );
            }
        };
        let result = query(arg_count, arg_pointers.as_mut_ptr());
        let reason = library
            .get::<ResultError>(b"chdb_result_error\0")
            .ok()
            .filter(|_| !result.is_null())
            .map(|error_of| error_of(result))
            .filter(|message| !message.is_null())
            .map_or_else(
                || "the engine stopped serving without an error".to_owned(),
                |message| CStr::from_ptr(message).to_string_lossy().into_owned(),
            );
        std::mem::forget(library);
        reason
    }
}

/// Ends the process without running C++ static destructors, which may abort in the engine.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` only ends the process; nothing is touched afterwards.
    unsafe { nix::libc::_exit(code) }
}

fn with_trailing_slash(path: &Path) -> String {
    let mut text = path.display().to_string();
    if !text.ends_with('/') {
        text.push('/');
    }
    text
}

/// Lets inserts that are running finish (and be acknowledged) before the process exits.
///
/// Nothing else needs flushing: the engine writes an insert's data part before acknowledging it,
/// and in this embedded mode the `async_insert` queue is not used (such inserts run synchronously).
fn wait_for_running_inserts(http_port: u16, admin_password: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match query_over_http(
            http_port,
            admin_password,
            "SELECT count() FROM system.processes WHERE query_kind = 'Insert'",
        ) {
            Ok(count) if count.trim() == "0" => return,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => {
                eprintln!("clickhouse-server: cannot list running inserts: {error}");
                return;
            }
        }
    }
    eprintln!("clickhouse-server: inserts still running after 20s; stopping anyway");
}

/// A minimal HTTP/1.1 request to the engine itself: the launcher has no HTTP client of its own.
fn query_over_http(http_port: u16, admin_password: Option<&str>, query: &str) -> std::io::Result<String> {
    let credentials = admin_password.map_or_else(String::new, |password| {
        format!(
            "X-ClickHouse-User: {}\r\nX-ClickHouse-Key: {password}\r\n",
            sealtrail_clickhouse::access::ADMIN_USER
        )
    });
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n{credentials}Content-Length: {}\r\nConnection: close\r\n\r\n{query}",
        query.len()
    );
    let mut stream = TcpStream::connect(("127.0.0.1", http_port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or_default().to_owned(),
        ));
    }
    // The engine answers with chunked encoding: a size line, the data, then a zero chunk.
    let data = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body.split("\r\n").nth(1).unwrap_or_default().to_owned()
    } else {
        body.to_owned()
    };
    Ok(data)
}
