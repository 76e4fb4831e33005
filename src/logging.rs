//! Logging that no input can turn into a disk filler: each log statement (call site) may write
//! a burst of lines, then about one per second; what it drops meanwhile is counted and said in
//! its next line. Every line is cut at 4 KiB. (A broker accept loop failing with "Too many open
//! files" used to log 50–94 MB/s.)

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::callsite::Identifier;
use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// Lines one call site may write at once.
pub const BURST: f64 = 20.0;
/// Then one line per this much time.
pub const REFILL: Duration = Duration::from_secs(1);
/// Longest line written.
pub const MAX_LINE: usize = 4096;

struct Bucket {
    tokens: f64,
    at: Instant,
    suppressed: u64,
}

/// Wraps a writer maker (stdout in the binary) with the per-call-site limit.
#[derive(Clone)]
pub struct RateLimited<M> {
    inner: M,
    buckets: Arc<Mutex<HashMap<Identifier, Bucket>>>,
}

impl<M> RateLimited<M> {
    pub fn new(inner: M) -> Self {
        RateLimited {
            inner,
            buckets: Arc::default(),
        }
    }

    /// Whether a line from `meta`'s call site may be written now, and how many were dropped
    /// before it.
    fn admit(&self, meta: &Metadata<'_>) -> Option<u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(meta.callsite()).or_insert(Bucket {
            tokens: BURST,
            at: now,
            suppressed: 0,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() / REFILL.as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Some(std::mem::take(&mut bucket.suppressed))
        } else {
            bucket.suppressed += 1;
            None
        }
    }
}

/// One event's writer: writes (after a note of what was dropped) or discards.
pub struct Line<W> {
    inner: Option<W>,
    note: Option<String>,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(buf.len());
        };
        if let Some(note) = self.note.take() {
            inner.write_all(note.as_bytes())?;
        }
        if buf.len() <= MAX_LINE {
            inner.write_all(buf)?;
        } else {
            let mut cut = MAX_LINE;
            // Do not split a UTF-8 character.
            while cut > 0 && (buf[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            inner.write_all(&buf[..cut])?;
            writeln!(inner, " … [line cut, {} bytes]", buf.len())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RateLimited<M> {
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            inner: Some(self.inner.make_writer()),
            note: None,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        match self.admit(meta) {
            None => Line {
                inner: None,
                note: None,
            },
            Some(dropped) => Line {
                inner: Some(self.inner.make_writer_for(meta)),
                note: (dropped > 0).then(|| {
                    format!(
                        "[log] {dropped} more lines like the next were dropped ({}:{})\n",
                        meta.file().unwrap_or("?"),
                        meta.line().unwrap_or(0)
                    )
                }),
            },
        }
    }
}

fn is_rumqttd_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == tracing::Level::ERROR && meta.target().starts_with("rumqttd")
}

/// What rumqttd logs at ERROR for an ordinary client disconnect (a client closing its socket,
/// the router dropping its link): the text of the same line at DEBUG, or `None` for a real error.
fn benign_broker_error(event: &tracing::Event<'_>) -> Option<String> {
    if !is_rumqttd_error(event.metadata()) {
        return None;
    }
    let mut fields = Fields::default();
    event.record(&mut fields);
    let message = fields.message.as_deref()?;
    let gone = message
        .strip_prefix("no-connection id ")
        .and_then(|rest| rest.strip_suffix(" is already gone"))
        .is_some_and(|id| id.parse::<u64>().is_ok());
    let dropped = message == "router-drop" && fields.error.as_deref() == Some("Recv(Disconnected)");
    (gone || dropped).then(|| match &fields.error {
        Some(error) => format!("{message} error={error}"),
        None => message.to_string(),
    })
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    error: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "error" => self.error = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_string()),
            "error" => self.error = Some(value.to_string()),
            _ => {}
        }
    }
}

/// Keeps rumqttd's benign disconnect errors out of a layer (errors in the log must be errors).
pub struct NotBenign;

impl<S> tracing_subscriber::layer::Filter<S> for NotBenign {
    fn enabled(&self, _: &Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        true
    }

    // No limit of its own. (`None` would lift the level hint of the filter it is combined with,
    // and every disabled DEBUG/TRACE call site would be evaluated.)
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        benign_broker_error(event).is_none()
    }
}

/// Writes each of rumqttd's benign disconnect errors as a DEBUG line when `RUST_LOG` asks for
/// rumqttd's debug output. (It cannot log them again through `tracing`: an event raised while
/// another is being dispatched is dropped.)
pub struct Demote<M> {
    writer: M,
    show: bool,
}

impl<M> Demote<M> {
    pub fn new(writer: M, show: bool) -> Self {
        Demote { writer, show }
    }
}

/// Demote's own filter: rumqttd's ERROR call sites only. (A layer without a filter would switch
/// on every call site of every crate; a per-layer filter limits only this layer.)
pub fn demote_filter() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(is_rumqttd_error)
}

/// Whether a `RUST_LOG` value enables DEBUG for rumqttd (a global or a `rumqttd…` directive).
pub fn rumqttd_debug_wanted(spec: &str) -> bool {
    let verbose = |level: &str| matches!(level.trim(), "debug" | "trace");
    spec.split(',').any(|d| match d.split_once('=') {
        None => verbose(d),
        Some((target, level)) => target.trim().starts_with("rumqttd") && verbose(level),
    })
}

impl<S, M> tracing_subscriber::Layer<S> for Demote<M>
where
    S: tracing::Subscriber,
    M: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if !self.show {
            return;
        }
        if let Some(text) = benign_broker_error(event) {
            let at = humantime::format_rfc3339_micros(std::time::SystemTime::now());
            let mut w = self.writer.make_writer_for(event.metadata());
            let _ = writeln!(w, "{at} DEBUG rumqttd: {text}");
        }
    }
}

/// The binary's logging: `RUST_LOG` or `info,rumqttd=warn`, rate-limited, to stdout; ANSI
/// colour only when stdout is a terminal; rumqttd's benign disconnect errors at DEBUG.
pub fn init() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=warn"));
    let show_benign = rumqttd_debug_wanted(&std::env::var("RUST_LOG").unwrap_or_default());
    let writer = RateLimited::new(std::io::stdout);
    // The broker-loss layer sees rumqttd's cursor jumps whatever RUST_LOG filters out.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::stdout().is_terminal())
                .with_writer(writer.clone())
                .with_filter(filter.and(NotBenign)),
        )
        .with(Demote::new(writer, show_benign).with_filter(demote_filter()))
        .with(crate::mqtt::alerts::layer())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    #[test]
    fn a_flood_from_one_call_site_is_cut_and_counted() {
        let sink = Sink::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(RateLimited::new(sink.clone()))
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..100_000 {
                tracing::error!(i, "Unable to accept socket: Too many open files");
            }
            tracing::warn!("{}", "x".repeat(100_000));
            tracing::info!("another call site is not affected");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let floods = text.matches("Too many open files").count();
        assert!((20..=25).contains(&floods), "a burst of 20, not {floods}");
        assert!(text.contains("another call site is not affected"));
        assert!(text.contains("[line cut, "));
        assert!(text.len() < 20 * 200 + 2 * MAX_LINE, "{} bytes", text.len());
    }

    #[test]
    fn rumqttd_disconnect_noise_is_debug_and_real_errors_stay_errors() {
        use tracing_subscriber::filter::FilterExt;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::Layer;
        let sink = Sink::default();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(sink.clone())
                    .with_filter(
                        tracing_subscriber::EnvFilter::new(
                            "info,rumqttd=warn,lps_bridge::broker=debug",
                        )
                        .and(NotBenign),
                    ),
            )
            .with(Demote::new(sink.clone(), true).with_filter(demote_filter()));
        #[derive(Debug)]
        enum LinkError {
            Recv(Disconnected),
            Send(Disconnected),
        }
        #[derive(Debug)]
        struct Disconnected;
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "rumqttd::router::routing", "no-connection id {} is already gone", 3);
            tracing::error!(target: "rumqttd::server::broker", error = ?LinkError::Recv(Disconnected), "router-drop");
            tracing::error!(target: "rumqttd::server::broker", error = ?LinkError::Send(Disconnected), "router-drop");
            tracing::error!(target: "rumqttd::router::routing", "no space for new connection");
            tracing::error!(target: "lps_bridge", "no-connection id 4 is already gone");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let level_of = |needle: &str| {
            lines
                .iter()
                .filter(|l| l.contains(needle))
                .map(|l| {
                    if l.contains("ERROR") {
                        "ERROR"
                    } else if l.contains("DEBUG") {
                        "DEBUG"
                    } else {
                        "?"
                    }
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            level_of("rumqttd: no-connection id 3"),
            vec!["DEBUG"],
            "{text}"
        );
        assert_eq!(level_of("id 3 is already gone"), vec!["DEBUG"], "{text}");
        assert!(rumqttd_debug_wanted("info,rumqttd=debug"));
        assert!(rumqttd_debug_wanted("trace"));
        assert!(!rumqttd_debug_wanted("info,rumqttd=warn,lps_bridge=debug"));
        assert_eq!(
            level_of("router-drop error=Recv(Disconnected)"),
            vec!["DEBUG"],
            "{text}"
        );
        assert_eq!(level_of("Send(Disconnected)"), vec!["ERROR"], "{text}");
        assert_eq!(
            level_of("no space for new connection"),
            vec!["ERROR"],
            "{text}"
        );
        assert_eq!(
            level_of("id 4 is already gone"),
            vec!["ERROR"],
            "not rumqttd's: {text}"
        );
    }

    #[test]
    fn dropped_lines_are_reported_with_the_next_one() {
        let sink = Sink::default();
        let limited = RateLimited::new(sink.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_writer(limited.clone())
            .with_ansi(false)
            .finish();
        let flood = || {
            for _ in 0..50 {
                tracing::error!("same place");
            }
        };
        tracing::subscriber::with_default(subscriber, || {
            flood();
            // Refill the call site's bucket by hand instead of sleeping.
            for bucket in limited.buckets.lock().unwrap().values_mut() {
                bucket.tokens = BURST;
            }
            flood();
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("[log] 30 more lines like the next were dropped"),
            "{text}"
        );
    }
}
