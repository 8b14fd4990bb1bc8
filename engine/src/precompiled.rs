//! Templates compiled ahead of time: RVM programs a binary carries, so that a start does not
//! parse, analyse and compile the Rego it ships (issue 15, item 2).
//!
//! An artifact maps each template's exact Rego (name, version, module and libraries) to its
//! serialized [`Program`] and `violation` rule. It is only as good as the compiler that wrote
//! it, so it records the fingerprint of the regorus sources and of tollgate's Rego
//! normalisation (`engine/build.rs`); an artifact from another compiler is not used at all. A
//! template whose Rego has no entry, or whose program does not fully deserialize (a newer
//! format, a builtin this build does not have, damaged bytes), is compiled as usual: loading
//! never fails a start, it only makes it slower, and says why ([`Precompiled::lookup`]).
//!
//! The format is tollgate's own, little-endian and length-prefixed: the magic, the format
//! version, the fingerprint, then per entry the key's fields, the rule, the parameter-only
//! rules ([`crate::rego::parameter_only_rules`]), regorus's `serialize_binary` bytes and their
//! checksum. `tollgate build` writes it (`constraints/programs.rvm`), from the
//! templates it generates, and `--check` fails when the committed one differs.

use std::fmt;

use regorus::rvm::program::{DeserializationResult, Program};

use crate::compile::{CompiledTemplate, PrecompiledUse};
use crate::gatekeeper::RegoCode;

/// What identifies the compiler (regorus's sources, tollgate's Rego normalisation).
pub const FINGERPRINT: &str = env!("TOLLGATE_RVM_FINGERPRINT");

const MAGIC: &[u8; 8] = b"TGRVM\0\0\x01";
/// Where `tollgate build` writes the artifact, in the constraints directory.
pub const FILE_NAME: &str = "programs.rvm";

/// Bumped whenever the layout below changes (2: the word-wise checksum; 3: the parameter-only
/// rules).
const FORMAT: u32 = 3;

/// The Rego a program was compiled from: a template is only given the program of exactly its
/// own code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The template name (regorus's file names, and so its error locations, include it).
    pub name: String,
    /// Rego v1.
    pub v1: bool,
    /// The template module.
    pub rego: String,
    /// Its libraries, in order.
    pub libs: Vec<String>,
}

impl Key {
    /// The key of a template's Rego.
    pub fn of(name: &str, code: &RegoCode) -> Key {
        Key {
            name: name.to_string(),
            v1: code.v1,
            rego: code.rego.clone(),
            libs: code.libs.clone(),
        }
    }

    fn matches(&self, name: &str, code: &RegoCode) -> bool {
        self.name == name && self.v1 == code.v1 && self.rego == code.rego && self.libs == code.libs
    }
}

/// One template's program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Rego it was compiled from.
    pub key: Key,
    /// The `violation` rule's full path (`data.<package>.violation`).
    pub rule: String,
    /// The paths of the rules whose values depend on `input.parameters` alone, found in the
    /// Rego when it was compiled (a program alone does not tell).
    pub parameter_rules: Vec<String>,
    /// `Program::serialize_binary`.
    pub program: Vec<u8>,
}

/// An artifact of precompiled templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Precompiled {
    fingerprint: String,
    entries: Vec<Entry>,
}

/// Why an artifact, or one of its programs, is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The bytes are not an artifact this build reads (damaged, truncated, another format).
    Malformed(String),
    /// Written by another compiler than this build's.
    Fingerprint {
        /// The artifact's.
        found: String,
    },
    /// regorus could not restore the whole program (its message).
    Program(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Malformed(why) => write!(f, "not a readable program artifact: {why}"),
            LoadError::Fingerprint { found } => write!(
                f,
                "compiled by another regorus or Rego normalisation (fingerprint {found}, this \
                 build {FINGERPRINT}): run `tollgate build`"
            ),
            LoadError::Program(why) => write!(f, "the program does not deserialize: {why}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// What [`Precompiled::lookup`] found for a template.
#[derive(Debug)]
pub enum Lookup {
    /// No entry for this Rego: compile it.
    Absent,
    /// The program, ready to run (tollgate's `sprintf` bound).
    Ready {
        /// The program.
        program: Box<Program>,
        /// The `violation` rule's path.
        rule: String,
        /// The parameter-only rules' paths.
        parameter_rules: Vec<String>,
    },
    /// An entry that cannot be used: compile, and say why.
    Unusable(LoadError),
}

impl Precompiled {
    /// An empty artifact of this build's compiler.
    pub fn new() -> Precompiled {
        Precompiled {
            fingerprint: FINGERPRINT.to_string(),
            entries: Vec::new(),
        }
    }

    /// Adds (or replaces) a template's program; entries stay sorted so the bytes are stable.
    pub fn insert(&mut self, entry: Entry) {
        self.entries.retain(|e| e.key != entry.key);
        let at = self.entries.partition_point(|e| e.key < entry.key);
        self.entries.insert(at, entry);
    }

    /// The entries, sorted by key.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The fingerprint of the compiler that wrote it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether some entry was compiled for a template of this name (for any Rego).
    pub fn has_program_named(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.key.name == name)
    }

    /// The program for a template's Rego, if this artifact has one.
    pub fn lookup(&self, name: &str, code: &RegoCode) -> Lookup {
        let Some(entry) = self.entries.iter().find(|e| e.key.matches(name, code)) else {
            return Lookup::Absent;
        };
        match restore(&entry.program) {
            Ok(program) => Lookup::Ready {
                program: Box::new(program),
                rule: entry.rule.clone(),
                parameter_rules: entry.parameter_rules.clone(),
            },
            Err(e) => Lookup::Unusable(e),
        }
    }

    /// An artifact of every template here that runs on the RVM (compiled without an artifact:
    /// a program is only stored from the compiler itself).
    pub fn of_templates<'a>(
        templates: impl IntoIterator<Item = &'a CompiledTemplate>,
    ) -> Result<Precompiled, String> {
        let mut out = Precompiled::new();
        for t in templates {
            if t.precompiled() == &PrecompiledUse::Used {
                return Err(format!(
                    "{}: compiled from an artifact, not from its Rego",
                    t.kind()
                ));
            }
            let Some((name, code, fast)) = t.rvm_program() else {
                continue;
            };
            let program = fast
                .program()
                .serialize_binary()
                .map_err(|e| format!("{}: the program does not serialize: {e}", t.kind()))?;
            out.insert(Entry {
                key: Key::of(name, code),
                rule: fast.rule().to_string(),
                parameter_rules: fast.parameter_rules(),
                program,
            });
        }
        Ok(out)
    }

    /// The artifact's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        put(&mut out, self.fingerprint.as_bytes());
        put_len(&mut out, self.entries.len());
        for e in &self.entries {
            put(&mut out, e.key.name.as_bytes());
            out.push(u8::from(e.key.v1));
            put(&mut out, e.key.rego.as_bytes());
            put_len(&mut out, e.key.libs.len());
            for lib in &e.key.libs {
                put(&mut out, lib.as_bytes());
            }
            put(&mut out, e.rule.as_bytes());
            put_len(&mut out, e.parameter_rules.len());
            for rule in &e.parameter_rules {
                put(&mut out, rule.as_bytes());
            }
            put(&mut out, &e.program);
            out.extend_from_slice(&checksum(&e.program).to_le_bytes());
        }
        out
    }

    /// Reads an artifact. An artifact of another compiler is refused whole: its programs may
    /// decode into instructions that mean something else to this build's machine.
    pub fn from_bytes(bytes: &[u8]) -> Result<Precompiled, LoadError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(LoadError::Malformed("bad magic".into()));
        }
        let format = r.u32()?;
        if format != FORMAT {
            return Err(LoadError::Malformed(format!(
                "format {format}, this build reads {FORMAT}"
            )));
        }
        let fingerprint = r.string()?;
        if fingerprint != FINGERPRINT {
            return Err(LoadError::Fingerprint { found: fingerprint });
        }
        let count = r.u32()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let name = r.string()?;
            let v1 = r.take(1)? != [0];
            let rego = r.string()?;
            let libs = (0..r.u32()?)
                .map(|_| r.string())
                .collect::<Result<Vec<_>, _>>()?;
            let rule = r.string()?;
            let parameter_rules = (0..r.u32()?)
                .map(|_| r.string())
                .collect::<Result<Vec<_>, _>>()?;
            let program = r.bytes()?.to_vec();
            // regorus's format has no checksum, and a flipped byte in an instruction can
            // decode into another valid instruction.
            if r.u64()? != checksum(&program) {
                return Err(LoadError::Malformed(format!(
                    "the program of {name} is damaged (checksum)"
                )));
            }
            entries.push(Entry {
                key: Key {
                    name,
                    v1,
                    rego,
                    libs,
                },
                rule,
                parameter_rules,
                program,
            });
        }
        if r.at != bytes.len() {
            return Err(LoadError::Malformed("trailing bytes".into()));
        }
        Ok(Precompiled {
            fingerprint,
            entries,
        })
    }
}

/// What differs between a committed artifact's bytes and the one that would be written, one
/// line each, for `tollgate build --check` (the bytes themselves are no diff to read).
pub fn differences(committed: &[u8], fresh: &Precompiled) -> Vec<String> {
    let old = match Precompiled::from_bytes(committed) {
        Ok(old) => old,
        Err(e) => {
            return vec![format!(
                "the committed artifact is not used by this build: {e}"
            )];
        }
    };
    let mut out = Vec::new();
    for e in &fresh.entries {
        match old.entries.iter().find(|o| o.key == e.key) {
            None => out.push(format!("{}: no program for its current Rego", e.key.name)),
            Some(o) if o.program != e.program || o.rule != e.rule => out.push(format!(
                "{}: the program differs ({} bytes committed, {} compiled now)",
                e.key.name,
                o.program.len(),
                e.program.len()
            )),
            Some(o) if o.parameter_rules != e.parameter_rules => out.push(format!(
                "{}: the parameter-only rules differ (committed [{}], found now [{}])",
                e.key.name,
                o.parameter_rules.join(", "),
                e.parameter_rules.join(", ")
            )),
            Some(_) => {}
        }
    }
    for o in &old.entries {
        if !fresh.entries.iter().any(|e| e.key == o.key) {
            out.push(format!(
                "{}: a program for Rego no template has",
                o.key.name
            ));
        }
    }
    out
}

/// A program from regorus's bytes, complete or not at all, with tollgate's `sprintf` bound
/// again (deserialization binds builtins by name, to regorus's own).
pub fn restore(bytes: &[u8]) -> Result<Program, LoadError> {
    match Program::deserialize_binary(bytes) {
        Ok(DeserializationResult::Complete(program)) => Ok(crate::rvm::with_go_sprintf(program)),
        Ok(DeserializationResult::Partial(_)) => Err(LoadError::Program(
            "only partly (an older format, damaged sections or an unknown builtin)".into(),
        )),
        Err(e) => Err(LoadError::Program(e)),
    }
}

/// FNV-1a's step over little-endian 64-bit words (the last one zero-padded), then the length:
/// catches damage, not tampering (the artifact is part of the binary). Any one changed word
/// changes the result, as every later step is a bijection of the state. Word-wise because a
/// start reads the whole artifact: a byte at a time, the checksums were about 0.1 ms of it.
fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let step = |hash: u64, word: &[u8]| {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME)
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut hash = (&mut chunks).fold(0xcbf2_9ce4_8422_2325, step);
    if !chunks.remainder().is_empty() {
        hash = step(hash, chunks.remainder());
    }
    (hash ^ bytes.len() as u64).wrapping_mul(PRIME)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Lengths over 4 GiB cannot come from templates a cluster accepts; saturate rather than
    // wrap, and the reader refuses the result.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LoadError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| LoadError::Malformed(format!("truncated at byte {}", self.at)))?;
        let slice = self.bytes.get(self.at..end).unwrap_or_default();
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, LoadError> {
        let b = self.take(4)?;
        let mut word = [0u8; 4];
        word.copy_from_slice(b);
        Ok(u32::from_le_bytes(word))
    }

    fn u64(&mut self) -> Result<u64, LoadError> {
        let b = self.take(8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(b);
        Ok(u64::from_le_bytes(word))
    }

    fn bytes(&mut self) -> Result<&'a [u8], LoadError> {
        let n = self.u32()?;
        self.take(usize::try_from(n).map_err(|_| LoadError::Malformed("length".into()))?)
    }

    fn string(&mut self) -> Result<String, LoadError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| LoadError::Malformed("not UTF-8".into()))
    }
}
