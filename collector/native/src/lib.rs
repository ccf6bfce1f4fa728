//! chokepoint's native span ingest core: an OTLP `ExportTraceServiceRequest`'s bytes →
//! per-route and per-dependency sketch bins, breakdown sums, and only the traces Python
//! still has to decide on.  The Python side is `chokepoint.collector.native_ingest`
//! (its docstring is the manual); the rules are those of `ingest_spans.SpanIngestor`.

mod wire;

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use wire::{Bad, Reader, Val, FIXED64, LEN, VARINT};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const CONSUMER: i32 = 5;
const STATUS_ERROR: i32 = 2;
const NONE: u32 = u32::MAX;
const MIN_INDEXABLE: f64 = 1e-12;
const CLASS_CACHE_MAX: usize = 20_000;
const NESTED_LINEAR_MAX: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Signal {
    Server,
    Http,
    Db,
    Kafka,
}

impl Signal {
    fn from_name(s: &str) -> Option<Signal> {
        match s {
            "server" => Some(Signal::Server),
            "http" => Some(Signal::Http),
            "db" => Some(Signal::Db),
            "kafka" => Some(Signal::Kafka),
            _ => None,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Signal::Server => "server",
            Signal::Http => "http",
            Signal::Db => "db",
            Signal::Kafka => "kafka",
        }
    }
}

// ------------------------------------------------------------------ decoded request

struct Resource<'a> {
    service: std::borrow::Cow<'a, str>,
    agent_distro: bool,
}

struct Rec<'a> {
    res: u32,
    off: usize,
    len: usize,
    tid: &'a [u8],
    sid: &'a [u8],
    pid: &'a [u8],
    kind: i32,
    status: i32,
    name: &'a [u8],
    dur: f64,
    attrs: (u32, u32),
    has_keep: bool,
    cls: u32,
}

struct Decoded<'a> {
    resources: Vec<Resource<'a>>,
    recs: Vec<Rec<'a>>,
    arena: Vec<(u8, Val<'a>)>,
    rejected: usize,
    rejected_names: Vec<&'a [u8]>,
}

struct Keys {
    /// wanted attribute keys by length: (key bytes, index)
    by_len: Vec<Vec<(Vec<u8>, u8)>>,
    keep: u8,
    /// indexes that take part in classification
    class_mask: u64,
    names: Vec<String>,
}

impl Keys {
    #[inline]
    fn index(&self, key: &[u8]) -> Option<u8> {
        let group = self.by_len.get(key.len())?;
        for (k, i) in group {
            if k.as_slice() == key {
                return Some(*i);
            }
        }
        None
    }
}

fn decode<'a>(body: &'a [u8], keys: &Keys) -> Result<Decoded<'a>, Bad> {
    let mut d = Decoded { resources: Vec::new(), recs: Vec::new(), arena: Vec::new(), rejected: 0, rejected_names: Vec::new() };
    let mut r = Reader::new(body);
    while !r.done() {
        let (f, wt) = r.tag()?;
        if (f, wt) == (1, LEN) {
            resource_spans(body, r.bytes()?, keys, &mut d)?;
        } else {
            r.skip(wt)?;
        }
    }
    Ok(d)
}

fn resource_spans<'a>(body: &'a [u8], buf: &'a [u8], keys: &Keys, d: &mut Decoded<'a>) -> Result<(), Bad> {
    // the resource may come after its spans on the wire: collect the scope slices first
    let mut service: Option<Val<'a>> = None;
    let mut distro: Option<bool> = None;
    let mut scopes: Vec<&'a [u8]> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (f, wt) = r.tag()?;
        match (f, wt) {
            (1, LEN) => {
                let mut rr = Reader::new(r.bytes()?);
                while !rr.done() {
                    let (f2, wt2) = rr.tag()?;
                    if (f2, wt2) == (1, LEN) {
                        let kv = rr.bytes()?;
                        let key = wire::kv_key(kv)?;
                        if key == b"service.name" {
                            service = Some(wire::kv_value(kv)?);
                        } else if key == b"telemetry.distro.name" && distro.is_none() {
                            distro = Some(match wire::kv_value(kv)? {
                                Val::Str(s) => s.starts_with("chokepoint"),
                                _ => false,
                            });
                        }
                    } else {
                        rr.skip(wt2)?;
                    }
                }
            }
            (2, LEN) => scopes.push(r.bytes()?),
            _ => r.skip(wt)?,
        }
    }
    let service: std::borrow::Cow<'a, str> = match service {
        None | Some(Val::None) => "unknown_service".into(),
        Some(Val::Str(s)) if s.is_empty() => "unknown_service".into(),
        Some(Val::Str(s)) => s.into(),
        Some(Val::Int(0)) | Some(Val::Bool(false)) => "unknown_service".into(),
        Some(Val::Int(i)) => i.to_string().into(),
        Some(Val::Bool(true)) => "True".into(),
        Some(_) => return Err("service.name is not a string or an integer"),
    };
    let res = d.resources.len() as u32;
    d.resources.push(Resource { service, agent_distro: distro.unwrap_or(false) });
    for sc in scopes {
        let mut sr = Reader::new(sc);
        while !sr.done() {
            let (f, wt) = sr.tag()?;
            if (f, wt) == (2, LEN) {
                span(body, sr.bytes()?, res, keys, d)?;
            } else {
                sr.skip(wt)?;
            }
        }
    }
    Ok(())
}

fn span<'a>(body: &'a [u8], buf: &'a [u8], res: u32, keys: &Keys, d: &mut Decoded<'a>) -> Result<(), Bad> {
    let mut rec = Rec {
        res,
        off: buf.as_ptr() as usize - body.as_ptr() as usize,
        len: buf.len(),
        tid: b"",
        sid: b"",
        pid: b"",
        kind: 0,
        status: 0,
        name: b"",
        dur: 0.0,
        attrs: (0, 0),
        has_keep: false,
        cls: NONE,
    };
    let mut start: u64 = 0;
    let mut end: u64 = 0;
    let a0 = d.arena.len();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (f, wt) = r.tag()?;
        match (f, wt) {
            (1, LEN) => rec.tid = r.bytes()?,
            (2, LEN) => rec.sid = r.bytes()?,
            (4, LEN) => rec.pid = r.bytes()?,
            (5, LEN) => rec.name = r.bytes()?,
            (6, VARINT) => rec.kind = r.varint()? as i32,
            (7, FIXED64) => start = r.fixed64()?,
            (8, FIXED64) => end = r.fixed64()?,
            (9, LEN) => {
                let kv = r.bytes()?;
                let key = wire::kv_key(kv)?;
                if let Some(i) = keys.index(key) {
                    d.arena.push((i, wire::kv_value(kv)?));
                }
            }
            (15, LEN) => {
                let mut sr = Reader::new(r.bytes()?);
                while !sr.done() {
                    let (f2, wt2) = sr.tag()?;
                    if (f2, wt2) == (3, VARINT) {
                        rec.status = sr.varint()? as i32;
                    } else {
                        sr.skip(wt2)?;
                    }
                }
            }
            _ => r.skip(wt)?,
        }
    }
    if end < start || rec.tid.len() != 16 || rec.sid.len() != 8 {
        d.arena.truncate(a0);
        d.rejected += 1;
        if d.rejected_names.len() < 3 {
            d.rejected_names.push(rec.name);
        }
        return Ok(());
    }
    rec.dur = (end - start) as f64 / 1e9;
    rec.attrs = (a0 as u32, d.arena.len() as u32);
    let mut keep = Val::None;
    for (i, v) in &d.arena[a0..] {
        if let Val::Complex = v {
            return Err("an array or key-value list attribute the ingest reads");
        }
        if *i == keys.keep {
            keep = *v;
        }
    }
    rec.has_keep = keep.truthy();
    d.recs.push(rec);
    Ok(())
}

// ------------------------------------------------------------------ classification cache

/// What `_classify` reads of a span: kind, status ERROR, name, the classification attributes.
#[derive(PartialEq)]
struct ClassKey {
    kind: i32,
    error: bool,
    name: Vec<u8>,
    attrs: Vec<(u8, OwnedVal)>,
}

#[derive(PartialEq, Clone)]
enum OwnedVal {
    None,
    Str(String),
    Int(i64),
    Bool(bool),
    Double(u64),
    Bytes(Vec<u8>),
}

fn val_eq(a: &OwnedVal, b: &Val) -> bool {
    match (a, b) {
        (OwnedVal::None, Val::None) => true,
        (OwnedVal::Str(x), Val::Str(y)) => x == y,
        (OwnedVal::Int(x), Val::Int(y)) => x == y,
        (OwnedVal::Bool(x), Val::Bool(y)) => x == y,
        (OwnedVal::Double(x), Val::Double(y)) => *x == y.to_bits(),
        (OwnedVal::Bytes(x), Val::Bytes(y)) => x.as_slice() == *y,
        _ => false,
    }
}

fn owned(v: &Val) -> OwnedVal {
    match *v {
        Val::None | Val::Complex => OwnedVal::None,
        Val::Str(s) => OwnedVal::Str(s.to_owned()),
        Val::Int(i) => OwnedVal::Int(i),
        Val::Bool(b) => OwnedVal::Bool(b),
        Val::Double(d) => OwnedVal::Double(d.to_bits()),
        Val::Bytes(b) => OwnedVal::Bytes(b.to_vec()),
    }
}

struct Hasher(u64);

impl Hasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(last) ^ ((b.len() as u64) << 56));
    }
    fn val(&mut self, v: &Val) {
        match *v {
            Val::None | Val::Complex => self.add(1),
            Val::Str(s) => {
                self.add(2);
                self.bytes(s.as_bytes())
            }
            Val::Int(i) => {
                self.add(3);
                self.add(i as u64)
            }
            Val::Bool(b) => {
                self.add(4);
                self.add(b as u64)
            }
            Val::Double(d) => {
                self.add(5);
                self.add(d.to_bits())
            }
            Val::Bytes(b) => {
                self.add(6);
                self.bytes(b)
            }
        }
    }
}

struct Class {
    py: Py<PyAny>,
    signal: Option<Signal>,
    target: u32,
    error: bool,
}

struct Target {
    signal: Signal,
    name: String,
    py_name: Py<PyString>,
    py_dkind: Py<PyString>,
}

// ------------------------------------------------------------------ accumulators

struct Latency {
    svc: u32,
    target: u32,
    bins: Vec<(i64, u64)>,
    index: HashMap<i64, u32>,
    positives: u64,
    total: f64,
    lo: f64,
    hi: f64,
    zeros: u64,
    errors: u64,
}

impl Latency {
    fn new(svc: u32, target: u32) -> Self {
        Latency { svc, target, bins: Vec::new(), index: HashMap::new(), positives: 0, total: 0.0, lo: f64::INFINITY, hi: f64::NEG_INFINITY, zeros: 0, errors: 0 }
    }

    /// `Sketch.add_many`'s arithmetic for one value, in the same order.
    #[inline]
    fn add(&mut self, v: f64, multiplier: f64) {
        if v > MIN_INDEXABLE && v != f64::INFINITY {
            let k = (v.ln() * multiplier).ceil() as i64;
            match self.index.get(&k) {
                Some(&i) => self.bins[i as usize].1 += 1,
                None => {
                    self.index.insert(k, self.bins.len() as u32);
                    self.bins.push((k, 1));
                }
            }
            self.positives += 1;
            self.total += v;
            if v < self.lo {
                self.lo = v;
            }
            if v > self.hi {
                self.hi = v;
            }
        } else {
            self.zeros += 1; // durations are >= 0: the rest is exactly zero
        }
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Component {
    SelfTime,
    Db,
    Kafka,
    Http(u32),
}

struct Breakdown {
    svc: u32,
    target: u32,
    components: Vec<(Component, f64)>,
    requests: u64,
}

impl Breakdown {
    #[inline]
    fn add(&mut self, c: Component, seconds: f64) {
        for (k, v) in self.components.iter_mut() {
            if *k == c {
                *v += seconds;
                return;
            }
        }
        self.components.push((c, 0.0 + seconds));
    }
}

// ------------------------------------------------------------------ the core

/// Native span ingest; one per `SpanIngestor` (it caches classifications across requests).
#[pyclass(module = "chokepoint.collector._native_ingest")]
struct Core {
    keys: Keys,
    multiplier: f64,
    classes: Vec<Class>,
    class_keys: Vec<ClassKey>,
    class_index: HashMap<u64, Vec<u32>>,
    targets: Vec<Target>,
    target_index: HashMap<(Signal, String, String), u32>,
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

fn py_val<'py>(py: Python<'py>, v: &Val) -> PyResult<Bound<'py, PyAny>> {
    Ok(match *v {
        Val::None | Val::Complex => py.None().into_bound(py),
        Val::Str(s) => PyString::new(py, s).into_any(),
        Val::Int(i) => i.into_pyobject(py)?.into_any(),
        Val::Bool(b) => pyo3::types::PyBool::new(py, b).to_owned().into_any(),
        Val::Double(d) => d.into_pyobject(py)?.into_any(),
        Val::Bytes(b) => PyString::new(py, &hex(b)).into_any(),
    })
}

/// The wanted attributes of a span, last value per key, in key-index order.
fn span_attrs<'a>(arena: &[(u8, Val<'a>)], range: (u32, u32), out: &mut [Option<Val<'a>>; 64]) -> u64 {
    let mut seen = 0u64;
    for (i, v) in &arena[range.0 as usize..range.1 as usize] {
        out[*i as usize] = Some(*v);
        seen |= 1u64 << *i;
    }
    seen
}

struct Callbacks<'py> {
    classify: Bound<'py, PyAny>,
    authoritative: Bound<'py, PyAny>,
    is_kept: Bound<'py, PyAny>,
    route_p99: Bound<'py, PyAny>,
}

impl Core {
    fn clear_classes(&mut self) {
        self.classes.clear();
        self.class_keys.clear();
        self.class_index.clear();
        self.targets.clear();
        self.target_index.clear();
    }

    fn target(&mut self, py: Python<'_>, signal: Signal, name: &Bound<'_, PyString>, dkind: &Bound<'_, PyString>) -> PyResult<u32> {
        let n = name.to_str()?.to_owned();
        let k = dkind.to_str()?.to_owned();
        let key = (signal, n, k);
        if let Some(&t) = self.target_index.get(&key) {
            return Ok(t);
        }
        let t = self.targets.len() as u32;
        self.targets.push(Target { signal, name: key.1.clone(), py_name: name.clone().unbind(), py_dkind: dkind.clone().unbind() });
        let _ = py;
        self.target_index.insert(key, t);
        Ok(t)
    }

    fn classify(&mut self, py: Python<'_>, rec: &Rec, arena: &[(u8, Val)], cb: &Callbacks) -> PyResult<u32> {
        if !(SERVER..=CONSUMER).contains(&rec.kind) {
            return Ok(NONE);
        }
        let error = rec.status == STATUS_ERROR;
        let mut vals: [Option<Val>; 64] = [None; 64];
        let seen = span_attrs(arena, rec.attrs, &mut vals) & self.keys.class_mask;
        let mut h = Hasher(0x9e37_79b9_7f4a_7c15);
        h.add(rec.kind as u64);
        h.add(error as u64);
        h.bytes(rec.name);
        for i in 0..64u8 {
            if seen & (1u64 << i) != 0 {
                h.add(i as u64 + 100);
                h.val(vals[i as usize].as_ref().unwrap());
            }
        }
        if let Some(ids) = self.class_index.get(&h.0) {
            'ids: for &id in ids {
                let k = &self.class_keys[id as usize];
                if k.kind != rec.kind || k.error != error || k.name.as_slice() != rec.name || k.attrs.len() != seen.count_ones() as usize {
                    continue;
                }
                for (i, ov) in &k.attrs {
                    match &vals[*i as usize] {
                        Some(v) if seen & (1u64 << *i) != 0 && val_eq(ov, v) => {}
                        _ => continue 'ids,
                    }
                }
                return Ok(id);
            }
        }
        // a new combination: ask Python's own _classify
        let attrs = PyDict::new(py);
        let mut owned_attrs = Vec::new();
        for i in 0..64u8 {
            if seen & (1u64 << i) != 0 {
                let v = vals[i as usize].as_ref().unwrap();
                attrs.set_item(&self.keys.names[i as usize], py_val(py, v)?)?;
                owned_attrs.push((i, owned(v)));
            }
        }
        let name = PyString::new(py, wire::utf8(rec.name).map_err(pyo3::exceptions::PyValueError::new_err)?);
        let got = cb.classify.call1((rec.kind, rec.status, name, attrs))?;
        let (signal, target, cerror) = if got.is_none() {
            (None, NONE, false)
        } else {
            let t = got.cast::<PyTuple>()?;
            let sig_name: String = t.get_item(0)?.extract()?;
            let signal = Signal::from_name(&sig_name).ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown signal {sig_name}")))?;
            let tname = t.get_item(1)?.cast_into::<PyString>()?;
            let dkind = t.get_item(2)?.cast_into::<PyString>()?;
            let cerror: bool = t.get_item(3)?.extract()?;
            (Some(signal), self.target(py, signal, &tname, &dkind)?, cerror)
        };
        let id = self.classes.len() as u32;
        self.classes.push(Class { py: got.unbind(), signal, target, error: cerror });
        self.class_keys.push(ClassKey { kind: rec.kind, error, name: rec.name.to_vec(), attrs: owned_attrs });
        self.class_index.entry(h.0).or_default().push(id);
        Ok(id)
    }
}

fn local_root(recs: &[Rec], idx: &[u32]) -> Option<u32> {
    for &i in idx {
        if recs[i as usize].pid.is_empty() {
            return Some(i);
        }
    }
    for &i in idx {
        let r = &recs[i as usize];
        if r.kind == SERVER && !idx.iter().any(|&j| recs[j as usize].sid == r.pid) {
            return Some(i);
        }
    }
    None
}

/// `_nested_outbound`: outbound spans whose parent is an outbound span of the same signal.
fn nested_outbound(recs: &[Rec], idx: &[u32], classes: &[Class]) -> Vec<bool> {
    let sig = |i: u32| -> Option<Signal> {
        let c = recs[i as usize].cls;
        if c == NONE {
            return None;
        }
        match classes[c as usize].signal {
            Some(Signal::Server) | None => None,
            s => s,
        }
    };
    let mut out = vec![false; idx.len()];
    if idx.len() <= NESTED_LINEAR_MAX {
        // outbound: span id -> signal, the last record of a span id wins
        let outbound_of = |sid: &[u8]| -> Option<Option<Signal>> {
            let mut found = None;
            for &j in idx {
                if let Some(s) = sig(j) {
                    if recs[j as usize].sid == sid {
                        found = Some(Some(s));
                    }
                }
            }
            found
        };
        let mut distinct: Vec<&[u8]> = Vec::new();
        for &j in idx {
            if sig(j).is_some() && !distinct.contains(&recs[j as usize].sid) {
                distinct.push(recs[j as usize].sid);
            }
        }
        if distinct.len() < 2 {
            return out;
        }
        let mut nested_ids: Vec<&[u8]> = Vec::new();
        for &j in idx {
            if let Some(s) = sig(j) {
                if outbound_of(recs[j as usize].pid) == Some(Some(s)) {
                    nested_ids.push(recs[j as usize].sid);
                }
            }
        }
        for (k, &j) in idx.iter().enumerate() {
            out[k] = nested_ids.contains(&recs[j as usize].sid);
        }
        return out;
    }
    let mut outbound: HashMap<&[u8], Signal> = HashMap::new();
    for &j in idx {
        if let Some(s) = sig(j) {
            outbound.insert(recs[j as usize].sid, s);
        }
    }
    if outbound.len() < 2 {
        return out;
    }
    let mut nested_ids: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for &j in idx {
        if let Some(s) = sig(j) {
            if outbound.get(recs[j as usize].pid) == Some(&s) {
                nested_ids.insert(recs[j as usize].sid);
            }
        }
    }
    for (k, &j) in idx.iter().enumerate() {
        out[k] = nested_ids.contains(recs[j as usize].sid);
    }
    out
}

#[pymethods]
impl Core {
    /// `Core(multiplier, wanted_keys, keep_key, class_keys)`: the sketch's `1 / ln(gamma)`,
    /// the attribute keys the ingest reads, the agent's keep-reason key, and the keys
    /// `_classify` reads.
    #[new]
    fn new(multiplier: f64, wanted: Vec<String>, keep_key: String, class_keys: Vec<String>) -> PyResult<Self> {
        if wanted.len() > 64 {
            return Err(pyo3::exceptions::PyValueError::new_err("at most 64 wanted keys"));
        }
        let mut by_len: Vec<Vec<(Vec<u8>, u8)>> = Vec::new();
        let mut keep = u8::MAX;
        let mut mask = 0u64;
        for (i, k) in wanted.iter().enumerate() {
            let b = k.as_bytes().to_vec();
            if by_len.len() <= b.len() {
                by_len.resize(b.len() + 1, Vec::new());
            }
            by_len[b.len()].push((b, i as u8));
            if *k == keep_key {
                keep = i as u8;
            }
            if class_keys.contains(k) {
                mask |= 1u64 << i;
            }
        }
        if keep == u8::MAX {
            return Err(pyo3::exceptions::PyValueError::new_err("keep_key must be one of the wanted keys"));
        }
        Ok(Core {
            keys: Keys { by_len, keep, class_mask: mask, names: wanted },
            multiplier,
            classes: Vec::new(),
            class_keys: Vec::new(),
            class_index: HashMap::new(),
            targets: Vec::new(),
            target_index: HashMap::new(),
        })
    }

    /// Number of cached span classifications (bounded; cleared past 20,000).
    #[getter]
    fn cached_classes(&self) -> usize {
        self.classes.len()
    }

    /// Walk one request; see `native_ingest.py` for the arguments and the result.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (body, classify, authoritative, is_kept, route_p99, pending, take_pending, pending_room, pending_fresh))]
    fn consume<'py>(
        &mut self,
        py: Python<'py>,
        body: &Bound<'py, PyBytes>,
        classify: Bound<'py, PyAny>,
        authoritative: Bound<'py, PyAny>,
        is_kept: Bound<'py, PyAny>,
        route_p99: Bound<'py, PyAny>,
        pending: Bound<'py, PyAny>,
        take_pending: Bound<'py, PyAny>,
        pending_room: i64,
        pending_fresh: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        // span ids of pending records (Python bytes) stay alive for the whole call
        let mut keep_alive: Vec<Bound<'py, PyBytes>> = Vec::new();
        let data: &[u8] = body.as_bytes();
        let keys = &self.keys;
        // the decode needs no Python: other threads run meanwhile (the bytes are immutable and held)
        let decoded = py.detach(|| decode(data, keys));
        let mut d = match decoded {
            Ok(d) => d,
            Err(why) => return Ok(PyString::new(py, why).into_any()),
        };
        if self.classes.len() > CLASS_CACHE_MAX {
            self.clear_classes();
        }
        // is_kept: the store's kept-trace ids (a dict, looked up directly) or a predicate
        let kept_ids: Option<Bound<'py, PyDict>> = is_kept.cast::<PyDict>().ok().map(|d| d.clone());
        let cb = Callbacks { classify, authoritative, is_kept, route_p99 };
        let accepted = d.recs.len();

        // services and their per-request authority (cached like the Python walk's dict)
        let mut svc_ids: HashMap<&str, u32> = HashMap::new();
        let mut services: Vec<&str> = Vec::new();
        let mut res_svc: Vec<u32> = Vec::with_capacity(d.resources.len());
        for res in &d.resources {
            let s: &str = res.service.as_ref();
            let id = *svc_ids.entry(s).or_insert_with(|| {
                services.push(s);
                (services.len() - 1) as u32
            });
            res_svc.push(id);
        }
        let py_services: Vec<Bound<'py, PyString>> = services.iter().map(|s| PyString::new(py, s)).collect();
        let mut auth_cache: HashMap<(u32, &'static str), bool> = HashMap::new();
        let mut authority = |svc: u32, signal: &'static str| -> PyResult<bool> {
            if let Some(&a) = auth_cache.get(&(svc, signal)) {
                return Ok(a);
            }
            let a: bool = cb.authoritative.call1((&py_services[svc as usize], signal))?.is_truthy()?;
            auth_cache.insert((svc, signal), a);
            Ok(a)
        };
        let mut res_sampled: Vec<bool> = Vec::with_capacity(d.resources.len());
        for (i, res) in d.resources.iter().enumerate() {
            res_sampled.push(authority(res_svc[i], "agent")? || res.agent_distro);
        }

        // classify every record (cached: Python's _classify runs once per new combination)
        for i in 0..d.recs.len() {
            let c = self.classify(py, &d.recs[i], &d.arena, &cb)?;
            d.recs[i].cls = c;
        }

        // group by trace, in order of first appearance
        let mut trace_index: HashMap<&[u8], u32> = HashMap::with_capacity(d.recs.len());
        let mut trace_of: Vec<u32> = Vec::with_capacity(d.recs.len());
        let mut counts: Vec<u32> = Vec::new();
        for r in &d.recs {
            let n = trace_index.len() as u32;
            let t = *trace_index.entry(r.tid).or_insert(n);
            if t == n {
                counts.push(0);
            }
            counts[t as usize] += 1;
            trace_of.push(t);
        }
        let ntraces = counts.len();
        let mut starts: Vec<u32> = Vec::with_capacity(ntraces + 1);
        let mut acc = 0u32;
        for c in &counts {
            starts.push(acc);
            acc += c;
        }
        starts.push(acc);
        let mut fill = starts.clone();
        let mut order: Vec<u32> = vec![0; d.recs.len()];
        for (i, &t) in trace_of.iter().enumerate() {
            order[fill[t as usize] as usize] = i as u32;
            fill[t as usize] += 1;
        }

        // traces whose earlier spans wait in the pending buffer: joined here as the Python walk
        // joins them, when no stash of this request can evict pending spans (else Python walks it)
        let mut joined: HashMap<u32, (Vec<u32>, Bound<'py, PyAny>)> = HashMap::new();
        if pending.is_truthy()? {
            let mut hits: Vec<(u32, Bound<'py, PyBytes>)> = Vec::new();
            for t in 0..ntraces {
                let first = order[starts[t] as usize] as usize;
                let tid = PyBytes::new(py, d.recs[first].tid);
                if pending.contains(&tid)? {
                    hits.push((t as u32, tid));
                }
            }
            if !hits.is_empty() && !(pending_fresh && (accepted as i64) <= pending_room) {
                return Ok(PyString::new(py, "pending spans could be evicted during the request").into_any());
            }
            for (t, tid) in hits {
                let earlier = take_pending.call1((tid,))?;
                let mut combined: Vec<u32> = Vec::new();
                for item in earlier.try_iter()? {
                    let item = item?;
                    let rec = item.cast::<PyTuple>()?;
                    let span = rec.get_item(1)?;
                    let sid = span.getattr("span_id")?.cast_into::<PyBytes>()?;
                    let pid = span.getattr("parent_span_id")?.cast_into::<PyBytes>()?;
                    // SAFETY: the bytes objects are kept alive in keep_alive until the call returns
                    let (sid_b, pid_b): (&[u8], &[u8]) = unsafe { (std::mem::transmute::<&[u8], &[u8]>(sid.as_bytes()), std::mem::transmute::<&[u8], &[u8]>(pid.as_bytes())) };
                    let cls_obj = rec.get_item(5)?;
                    let cls = if cls_obj.is_none() {
                        NONE
                    } else {
                        let ct = cls_obj.cast::<PyTuple>()?;
                        let sig_name: String = ct.get_item(0)?.extract()?;
                        let signal = Signal::from_name(&sig_name).ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown signal {sig_name}")))?;
                        let target = self.target(py, signal, &ct.get_item(1)?.cast_into::<PyString>()?, &ct.get_item(2)?.cast_into::<PyString>()?)?;
                        let error: bool = ct.get_item(3)?.extract()?;
                        self.classes.push(Class { py: cls_obj.clone().unbind(), signal: Some(signal), target, error });
                        self.class_keys.push(ClassKey { kind: -1, error: false, name: Vec::new(), attrs: Vec::new() });
                        (self.classes.len() - 1) as u32
                    };
                    combined.push(d.recs.len() as u32);
                    d.recs.push(Rec {
                        res: u32::MAX,
                        off: 0,
                        len: 0,
                        tid: b"",
                        sid: unsafe { std::mem::transmute::<&[u8], &[u8]>(sid_b) },
                        pid: unsafe { std::mem::transmute::<&[u8], &[u8]>(pid_b) },
                        kind: span.getattr("kind")?.extract()?,
                        status: 0,
                        name: b"",
                        dur: rec.get_item(3)?.extract()?,
                        attrs: (0, 0),
                        has_keep: false,
                        cls,
                    });
                    keep_alive.push(sid);
                    keep_alive.push(pid);
                }
                combined.extend_from_slice(&order[starts[t as usize] as usize..starts[t as usize + 1] as usize]);
                joined.insert(t, (combined, earlier));
            }
        }

        let mult = self.multiplier;
        let mut routes: Vec<Latency> = Vec::new();
        let mut route_index: HashMap<(u32, u32), u32> = HashMap::new();
        let mut deps: Vec<Latency> = Vec::new();
        let mut dep_index: HashMap<(u32, u32), u32> = HashMap::new();
        let mut breakdowns: Vec<Breakdown> = Vec::new();
        let mut breakdown_index: HashMap<(u32, u32), u32> = HashMap::new();
        let mut p99s: HashMap<(u32, u32), Option<f64>> = HashMap::new();
        let decisions = PyList::empty(py);

        for t in 0..ntraces {
            let idx = &order[starts[t] as usize..starts[t + 1] as usize];
            let recs = &d.recs;
            let first = &recs[idx[0] as usize];
            let has_keep = idx.iter().any(|&i| recs[i as usize].has_keep);
            let root = if idx.len() == 1 {
                let s = first;
                if s.pid.is_empty() || (s.kind == SERVER && s.pid != s.sid) {
                    Some(idx[0])
                } else {
                    None
                }
            } else {
                local_root(recs, idx)
            };
            let sampled = has_keep || res_sampled[first.res as usize];
            if !sampled {
                // _aggregate
                let nested = if idx.len() > 2 { nested_outbound(recs, idx, &self.classes) } else { Vec::new() };
                for (k, &i) in idx.iter().enumerate() {
                    let r = &recs[i as usize];
                    if r.cls == NONE || (!nested.is_empty() && nested[k]) {
                        continue;
                    }
                    let c = &self.classes[r.cls as usize];
                    let Some(signal) = c.signal else { continue };
                    let svc = res_svc[r.res as usize];
                    if authority(svc, signal.name())? {
                        continue;
                    }
                    let (table, index) = if signal == Signal::Server { (&mut routes, &mut route_index) } else { (&mut deps, &mut dep_index) };
                    let a = *index.entry((svc, c.target)).or_insert_with(|| {
                        table.push(Latency::new(svc, c.target));
                        (table.len() - 1) as u32
                    });
                    let lat = &mut table[a as usize];
                    lat.add(r.dur, mult);
                    if c.error {
                        lat.errors += 1;
                    }
                }
            }
            // the earlier spans of a pending trace join it here (after its own aggregation)
            let (idx, root) = match joined.get(&(t as u32)) {
                Some((combined, _)) => (combined.as_slice(), local_root(recs, combined)),
                None => (idx, root),
            };
            if !sampled {
                // _span_breakdown
                if let Some(ri) = root {
                    let root_rec = &recs[ri as usize];
                    // a pending record cannot be the joined trace's root (it was stashed for having
                    // none); should one be, its trace is left to the decision below, without breakdown
                    if root_rec.kind == SERVER && root_rec.res != u32::MAX {
                        let svc = res_svc[root_rec.res as usize];
                        let auth = authority(svc, "breakdown")?;
                        if !auth && root_rec.cls != NONE {
                            let rc = &self.classes[root_rec.cls as usize];
                            let b = *breakdown_index.entry((svc, rc.target)).or_insert_with(|| {
                                breakdowns.push(Breakdown { svc, target: rc.target, components: Vec::new(), requests: 0 });
                                (breakdowns.len() - 1) as u32
                            });
                            let bd = &mut breakdowns[b as usize];
                            if idx.len() == 1 {
                                bd.add(Component::SelfTime, if root_rec.dur > 0.0 { root_rec.dur } else { 0.0 });
                            } else {
                                let nested = nested_outbound(recs, idx, &self.classes);
                                let mut total = 0.0f64;
                                for (k, &i) in idx.iter().enumerate() {
                                    let r = &recs[i as usize];
                                    if i == ri || r.cls == NONE || nested[k] {
                                        continue;
                                    }
                                    let c = &self.classes[r.cls as usize];
                                    let comp = match c.signal {
                                        None | Some(Signal::Server) => continue,
                                        Some(Signal::Http) => Component::Http(c.target),
                                        Some(Signal::Db) => Component::Db,
                                        Some(Signal::Kafka) => Component::Kafka,
                                    };
                                    bd.add(comp, r.dur);
                                    total += r.dur;
                                }
                                let rest = root_rec.dur - total;
                                bd.add(Component::SelfTime, if rest > 0.0 { rest } else { 0.0 });
                            }
                            bd.requests += 1;
                        }
                    }
                }
            }

            // does Python have to decide on this trace?
            let kept = match &kept_ids {
                Some(ids) => ids.contains(hex(first.tid))?,
                None => cb.is_kept.call1((hex(first.tid),))?.is_truthy()?,
            };
            let mut decide = kept || has_keep || sampled;
            if !decide {
                decide = match root {
                    None => true, // children before their root: Python stashes them
                    Some(ri) if recs[ri as usize].res == u32::MAX => true,
                    Some(ri) => {
                        let rr = &recs[ri as usize];
                        let sig = if rr.cls == NONE { None } else { Some(&self.classes[rr.cls as usize]) };
                        match sig {
                            Some(c) if c.signal == Some(Signal::Server) => {
                                if c.error {
                                    true
                                } else {
                                    let svc = res_svc[rr.res as usize];
                                    let key = (svc, c.target);
                                    let p99 = match p99s.get(&key) {
                                        Some(p) => *p,
                                        None => {
                                            let p: Option<f64> = cb.route_p99.call1((&py_services[svc as usize], self.targets[c.target as usize].py_name.bind(py)))?.extract()?;
                                            p99s.insert(key, p);
                                            p
                                        }
                                    };
                                    matches!(p99, Some(p) if rr.dur > p)
                                }
                            }
                            _ => rr.status == STATUS_ERROR,
                        }
                    }
                };
            }
            if decide {
                let spans = PyList::empty(py);
                for &i in idx {
                    let r = &recs[i as usize];
                    if r.res == u32::MAX {
                        continue; // an earlier (pending) record: Python has it
                    }
                    let attrs = PyDict::new(py);
                    let mut vals: [Option<Val>; 64] = [None; 64];
                    let seen = span_attrs(&d.arena, r.attrs, &mut vals);
                    for k in 0..64u8 {
                        if seen & (1u64 << k) != 0 {
                            attrs.set_item(&self.keys.names[k as usize], py_val(py, vals[k as usize].as_ref().unwrap())?)?;
                        }
                    }
                    let cls = if r.cls == NONE { py.None() } else { self.classes[r.cls as usize].py.clone_ref(py) };
                    let svc = &py_services[res_svc[r.res as usize] as usize];
                    spans.append((svc, r.off, r.len, attrs, r.dur, res_sampled[r.res as usize], cls))?;
                }
                let earlier = match joined.get(&(t as u32)) {
                    Some((_, e)) => e.clone(),
                    None => py.None().into_bound(py),
                };
                decisions.append((PyBytes::new(py, first.tid), spans, earlier))?;
            }
        }

        let latency_rows = |rows: &[Latency], with_kind: bool| -> PyResult<Bound<'py, PyList>> {
            let out = PyList::empty(py);
            for l in rows {
                let bins = PyDict::new(py);
                for (k, c) in &l.bins {
                    bins.set_item(k, c)?;
                }
                let tg = &self.targets[l.target as usize];
                let svc = &py_services[l.svc as usize];
                let mut lo = l.lo;
                if l.zeros > 0 && lo > 0.0 {
                    lo = 0.0;
                }
                let mut hi = l.hi;
                if l.zeros > 0 && hi < 0.0 {
                    hi = 0.0;
                }
                let count = l.positives + l.zeros;
                if with_kind {
                    out.append((svc, tg.py_dkind.bind(py), tg.py_name.bind(py), bins, count, l.total, lo, hi, l.zeros, l.errors))?;
                } else {
                    out.append((svc, tg.py_name.bind(py), bins, count, l.total, lo, hi, l.zeros, l.errors))?;
                }
            }
            Ok(out)
        };
        let py_routes = latency_rows(&routes, false)?;
        let py_deps = latency_rows(&deps, true)?;
        let py_breakdowns = PyList::empty(py);
        for b in &breakdowns {
            let comps = PyDict::new(py);
            for (c, v) in &b.components {
                match c {
                    Component::SelfTime => comps.set_item("self", v)?,
                    Component::Db => comps.set_item("db", v)?,
                    Component::Kafka => comps.set_item("kafka", v)?,
                    Component::Http(t) => comps.set_item(format!("http:{}", self.targets[*t as usize].name), v)?,
                }
            }
            let _ = self.targets[b.target as usize].signal;
            py_breakdowns.append((&py_services[b.svc as usize], self.targets[b.target as usize].py_name.bind(py), comps, b.requests))?;
        }
        let names = PyList::empty(py);
        for n in &d.rejected_names {
            names.append(PyString::new(py, &String::from_utf8_lossy(n)))?;
        }
        let out = PyTuple::new(py, [accepted.into_pyobject(py)?.into_any(), d.rejected.into_pyobject(py)?.into_any(), names.into_any(), py_routes.into_any(), py_deps.into_any(), py_breakdowns.into_any(), decisions.into_any()])?;
        Ok(out.into_any())
    }
}

#[pymodule]
fn _native_ingest(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add("CLASS_CACHE_MAX", CLASS_CACHE_MAX)?;
    let _ = CLIENT;
    Ok(())
}
