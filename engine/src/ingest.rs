//! Ingestion: policy sources in, one [`PolicySet`] out, with the template as the unit of
//! failure.
//!
//! An [`Ingester`] remembers the last good version of every object it was given. When a new
//! version of a template, constraint or ExpansionTemplate does not compile, the last good one
//! stays enforced and the failure is reported; one that never compiled is left out and
//! reported; every other object is unaffected. A template whose document did not change is not
//! compiled again, so editing a constraint costs a constraint's work. Sources are layered: a
//! later layer (the cluster over files, files over the embedded pack) wins an object of the
//! same kind and name, and the object left out is reported.
//!
//! [`PolicySet::build_with`] is one ingestion with a fresh ingester that accepts no problem at
//! all: what `eval`, `verify` and `build` need.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::compile::{CompiledTemplate, PrecompiledUse};
use crate::document::Document;
use crate::error::{PolicyError, Subject};
use crate::expand::builtin_templates;
use crate::gatekeeper::{ApplyTo, ConstraintTemplate, ExpansionTemplate, Gvk, object_name};
use crate::load::Sources;
use crate::policy_set::{BuildOptions, CompiledConstraint, PolicySet};

/// One source's documents. Layers are given in rank order: a later one wins a conflict.
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// The source's name, used in reports (`pack`, `files`, `cluster`).
    pub source: &'a str,
    /// Its documents.
    pub documents: &'a Sources,
}

/// Something in the sources that is not enforced as written.
#[derive(Debug)]
pub struct Problem {
    /// The source that gave the object.
    pub source: String,
    /// What is wrong, and where.
    pub error: PolicyError,
    /// The object's last good version is still enforced.
    pub kept_last_good: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if self.kept_last_good {
            write!(f, " (the last good version stays enforced)")?;
        }
        Ok(())
    }
}

/// One template compilation (Gatekeeper's ingestion metric).
#[derive(Debug, Clone)]
pub struct TemplateIngestion {
    /// The template's `metadata.name`.
    pub name: String,
    /// How long compiling took.
    pub duration: Duration,
    /// Whether it compiled.
    pub ok: bool,
}

/// The result of one ingestion.
#[derive(Debug)]
pub struct Ingested {
    /// What is enforced from now on.
    pub set: PolicySet,
    /// What is not enforced as written, in document order (templates, then constraints, then
    /// ExpansionTemplates).
    pub problems: Vec<Problem>,
    /// Templates compiled by this ingestion (unchanged ones are not).
    pub compiled: Vec<TemplateIngestion>,
    /// Worth saying but not a problem: a second object of the same kind and name in one
    /// source, of which the later one is used (as gator does).
    pub warnings: Vec<String>,
}

struct Kept<T> {
    document: Value,
    value: Arc<T>,
}

/// Key of a remembered object: source, then kind (empty for templates, which are keyed by
/// name) and name.
type Key = (String, String, String);

/// Compiles sources into sets, remembering the last good version of every object.
pub struct Ingester {
    options: BuildOptions,
    templates: HashMap<Key, Kept<CompiledTemplate>>,
    constraints: HashMap<Key, Kept<CompiledConstraint>>,
    expansions: HashMap<Key, Kept<ExpansionTemplate>>,
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester")
            .field("templates", &self.templates.len())
            .field("constraints", &self.constraints.len())
            .finish_non_exhaustive()
    }
}

pub(crate) fn subject(doc: &Document, default_kind: &str) -> Box<Subject> {
    Box::new(Subject {
        origin: doc.origin.clone(),
        kind: doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or(default_kind)
            .to_string(),
        name: object_name(&doc.value).to_string(),
    })
}

fn key(source: &str, doc: &Document, kind: &str) -> Key {
    (
        source.to_string(),
        kind.to_string(),
        object_name(&doc.value).to_string(),
    )
}

/// What one layer's object became, before conflicts between objects are settled.
struct Candidate<'a, T> {
    layer: usize,
    doc: &'a Document,
    value: Option<Arc<T>>,
}

impl Ingester {
    /// An ingester that remembers nothing yet.
    pub fn new(options: BuildOptions) -> Self {
        Ingester {
            options,
            templates: HashMap::new(),
            constraints: HashMap::new(),
            expansions: HashMap::new(),
        }
    }

    /// Builds the set the layers describe now.
    pub fn ingest(&mut self, layers: &[Layer<'_>]) -> Ingested {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let deduplicated: Vec<Cow<'_, Sources>> = layers
            .iter()
            .map(|l| last_of_each(l.documents, &mut warnings))
            .collect();
        let layers: Vec<Layer<'_>> = layers
            .iter()
            .zip(&deduplicated)
            .map(|(l, documents)| Layer {
                source: l.source,
                documents: documents.as_ref(),
            })
            .collect();
        let layers = &layers[..];
        let mut set = PolicySet::default();
        let compiled = self.ingest_templates(layers, &mut set, &mut problems, &mut warnings);
        self.ingest_constraints(layers, &mut set, &mut problems);
        self.ingest_expansions(layers, &mut set, &mut problems);
        if self.options.builtin_expansions {
            // The built-in expansion steps aside for a kind the sources' own ExpansionTemplates
            // already expand: one kind, one resultant per template.
            set.expansions
                .extend(builtin_stepping_aside(&set.expansions));
        }
        set.constraints.sort_by(|a, b| {
            (&a.constraint.kind, &a.constraint.name).cmp(&(&b.constraint.kind, &b.constraint.name))
        });
        Ingested {
            set,
            problems,
            compiled,
            warnings,
        }
    }

    fn ingest_templates(
        &mut self,
        layers: &[Layer<'_>],
        set: &mut PolicySet,
        problems: &mut Vec<Problem>,
        warnings: &mut Vec<String>,
    ) -> Vec<TemplateIngestion> {
        // Which documents changed since the last ingestion; only those are compiled.
        let docs: Vec<(usize, &Document)> = layers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| l.documents.templates.iter().map(move |d| (i, d)))
            .collect();
        let changed: Vec<&Document> = docs
            .iter()
            .filter(|(i, d)| {
                self.templates
                    .get(&key(layers[*i].source, d, ""))
                    .is_none_or(|k| k.document != d.value)
            })
            .map(|(_, d)| *d)
            .collect();
        let results = compile_templates(&changed, self.options);
        let mut fresh: HashMap<*const Document, Result<Arc<CompiledTemplate>, PolicyError>> =
            HashMap::new();
        let mut ingestions = Vec::new();
        for (doc, (result, duration)) in changed.iter().zip(results) {
            ingestions.push(TemplateIngestion {
                name: object_name(&doc.value).to_string(),
                duration,
                ok: result.is_ok(),
            });
            if let Ok(t) = &result {
                // Not a problem (the template compiled here instead), but a slower start than the
                // binary was built for, and a sign the artifact is stale.
                if let PrecompiledUse::Refused(why) = t.precompiled() {
                    warnings.push(format!(
                        "{}: its precompiled program is not used, so it was compiled at start: {why}",
                        subject(doc, "ConstraintTemplate"),
                    ));
                }
                // CEL that does not compile: Gatekeeper accepts the template and denies every
                // review it runs in with the compile error; tollgate does the same and says so now.
                for d in t.diagnostics() {
                    warnings.push(format!(
                        "{}: {}: does not compile, so every review it runs in gets this error as its result (as in Gatekeeper): {}",
                        subject(doc, "ConstraintTemplate"),
                        d.field,
                        d.message.replace('\n', " ")
                    ));
                }
            }
            fresh.insert(std::ptr::from_ref(*doc), result.map(Arc::new));
        }
        let mut seen: HashSet<Key> = HashSet::new();
        let mut candidates = Vec::new();
        for (layer, doc) in docs {
            let source = layers[layer].source;
            let k = key(source, doc, "");
            let value = match fresh.remove(&std::ptr::from_ref(doc)) {
                None => self.templates.get(&k).map(|kept| Arc::clone(&kept.value)),
                Some(Ok(t)) => {
                    // A second document of the same name in one source: the first one counts.
                    if !seen.contains(&k) {
                        self.templates.insert(
                            k.clone(),
                            Kept {
                                document: doc.value.clone(),
                                value: Arc::clone(&t),
                            },
                        );
                    }
                    Some(t)
                }
                Some(Err(error)) => {
                    let kept = self.templates.get(&k).map(|kept| Arc::clone(&kept.value));
                    problems.push(Problem {
                        source: source.to_string(),
                        error,
                        kept_last_good: kept.is_some(),
                    });
                    kept
                }
            };
            seen.insert(k);
            candidates.push(Candidate { layer, doc, value });
        }
        self.templates.retain(|k, _| seen.contains(k));
        let winners = settle(layers, candidates, "constraint kind", problems, |t| {
            t.kind().to_string()
        });
        set.templates = winners.into_iter().collect();
        ingestions
    }

    fn ingest_constraints(
        &mut self,
        layers: &[Layer<'_>],
        set: &mut PolicySet,
        problems: &mut Vec<Problem>,
    ) {
        // Kinds some source's template declares, though no template of that kind compiled.
        let failed_kinds: HashSet<&str> = layers
            .iter()
            .flat_map(|l| &l.documents.templates)
            .filter_map(|d| d.value.pointer("/spec/crd/spec/names/kind")?.as_str())
            .filter(|kind| set.template(kind).is_none())
            .collect();
        let mut seen: HashSet<Key> = HashSet::new();
        let mut candidates = Vec::new();
        for (layer, l) in layers.iter().enumerate() {
            for doc in &l.documents.constraints {
                let kind = doc.value.get("kind").and_then(Value::as_str).unwrap_or("");
                let k = key(l.source, doc, kind);
                let compiled = set.compile_constraint(doc).and_then(|c| {
                    match c.constraint.unrecognized_action() {
                        Some(error) if !self.options.accept_unknown_actions => {
                            Err(PolicyError::Invalid {
                                subject: subject(doc, ""),
                                error,
                            })
                        }
                        _ => Ok(c),
                    }
                });
                let value = match compiled {
                    Ok(c) => {
                        let c = Arc::new(c);
                        if !seen.contains(&k) {
                            self.constraints.insert(
                                k.clone(),
                                Kept {
                                    document: doc.value.clone(),
                                    value: Arc::clone(&c),
                                },
                            );
                        }
                        Some(c)
                    }
                    Err(error) => {
                        // The last good version, while its template is still enforced.
                        let kept = self
                            .constraints
                            .get(&k)
                            .filter(|kept| set.template(&kept.value.constraint.kind).is_some())
                            .map(|kept| Arc::clone(&kept.value));
                        // A constraint of a template that failed is not another problem: the
                        // template's error says it all.
                        let follows_template = matches!(
                            &error,
                            PolicyError::UnknownKind { kind, .. } if failed_kinds.contains(kind.as_str())
                        );
                        if !follows_template {
                            problems.push(Problem {
                                source: l.source.to_string(),
                                error,
                                kept_last_good: kept.is_some(),
                            });
                        }
                        kept
                    }
                };
                seen.insert(k);
                candidates.push(Candidate { layer, doc, value });
            }
        }
        self.constraints.retain(|k, _| seen.contains(k));
        let winners = settle(layers, candidates, "constraint", problems, |c| {
            format!("{}/{}", c.constraint.kind, c.constraint.name)
        });
        set.constraints = winners.into_values().collect();
    }

    fn ingest_expansions(
        &mut self,
        layers: &[Layer<'_>],
        set: &mut PolicySet,
        problems: &mut Vec<Problem>,
    ) {
        let mut seen: HashSet<Key> = HashSet::new();
        for l in layers {
            for doc in &l.documents.expansions {
                let k = key(l.source, doc, "ExpansionTemplate");
                match ExpansionTemplate::from_value(&doc.value) {
                    Ok(e) => {
                        self.expansions.insert(
                            k.clone(),
                            Kept {
                                document: doc.value.clone(),
                                value: Arc::new(e.clone()),
                            },
                        );
                        set.expansions.push(e);
                    }
                    Err(error) => {
                        let kept = self.expansions.get(&k).map(|kept| kept.value.as_ref());
                        problems.push(Problem {
                            source: l.source.to_string(),
                            error: PolicyError::Invalid {
                                subject: subject(doc, "ExpansionTemplate"),
                                error,
                            },
                            kept_last_good: kept.is_some(),
                        });
                        set.expansions.extend(kept.cloned());
                    }
                }
                seen.insert(k);
            }
        }
        self.expansions.retain(|k, _| seen.contains(k));
    }
}

/// One source's documents with only the last of each template, constraint and ExpansionTemplate
/// of the same kind and name, as gator keeps them; each one dropped is a warning.
fn last_of_each<'a>(documents: &'a Sources, warnings: &mut Vec<String>) -> Cow<'a, Sources> {
    fn kind_and_name(d: &Document) -> (&str, &str) {
        (
            d.value.get("kind").and_then(Value::as_str).unwrap_or(""),
            object_name(&d.value),
        )
    }
    fn unique(docs: &[Document]) -> bool {
        let mut seen = HashSet::new();
        docs.iter().all(|d| seen.insert(kind_and_name(d)))
    }
    fn keep_last(docs: &[Document], warnings: &mut Vec<String>) -> Vec<Document> {
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for (i, d) in docs.iter().enumerate() {
            last.insert(kind_and_name(d), i);
        }
        let mut out = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            let winner = last.get(&kind_and_name(d)).copied().unwrap_or(i);
            if winner == i {
                out.push(d.clone());
            } else if let Some(later) = docs.get(winner) {
                warnings.push(format!(
                    "{}: not used: {} has the same kind and name, and the later one is used (as gator does)",
                    subject(d, ""),
                    later.origin
                ));
            }
        }
        out
    }
    // Sources rarely name an object twice: then nothing is dropped, and nothing is copied.
    if unique(&documents.templates)
        && unique(&documents.constraints)
        && unique(&documents.expansions)
    {
        return Cow::Borrowed(documents);
    }
    Cow::Owned(Sources {
        templates: keep_last(&documents.templates, warnings),
        constraints: keep_last(&documents.constraints, warnings),
        expansions: keep_last(&documents.expansions, warnings),
        objects: Vec::new(),
    })
}

/// The built-in workload expansion, less every kind that `own` templates already expand.
fn builtin_stepping_aside(own: &[ExpansionTemplate]) -> Vec<ExpansionTemplate> {
    builtin_templates()
        .into_iter()
        .filter_map(|mut builtin| {
            let mut kept = Vec::new();
            for a in &builtin.apply_to {
                for group in &a.groups {
                    for version in &a.versions {
                        for kind in &a.kinds {
                            let gvk = Gvk {
                                group: group.clone(),
                                version: version.clone(),
                                kind: kind.clone(),
                            };
                            if !own
                                .iter()
                                .any(|t| t.apply_to.iter().any(|o| o.matches(&gvk)))
                            {
                                kept.push(ApplyTo {
                                    groups: vec![group.clone()],
                                    versions: vec![version.clone()],
                                    kinds: vec![kind.clone()],
                                });
                            }
                        }
                    }
                }
            }
            builtin.apply_to = kept;
            (!builtin.apply_to.is_empty()).then_some(builtin)
        })
        .collect()
}

/// Settles conflicts between candidates of the same identity (a template's kind, a
/// constraint's kind and name): within one source the first one wins and the next is a
/// duplicate; across sources the later source wins and the earlier one is reported as
/// shadowed.
fn settle<'a, T>(
    layers: &[Layer<'_>],
    candidates: Vec<Candidate<'a, T>>,
    what: &'static str,
    problems: &mut Vec<Problem>,
    identity: impl Fn(&T) -> String,
) -> BTreeMap<String, Arc<T>> {
    let mut winners: BTreeMap<String, (usize, &'a Document, Arc<T>)> = BTreeMap::new();
    for Candidate { layer, doc, value } in candidates {
        let Some(value) = value else { continue };
        let id = identity(&value);
        let source = layers[layer].source;
        match winners.get(&id) {
            Some((first_layer, first, _)) if *first_layer == layer => {
                problems.push(Problem {
                    source: source.to_string(),
                    error: PolicyError::Duplicate {
                        subject: subject(doc, ""),
                        first: first.origin.clone(),
                    },
                    kept_last_good: false,
                });
                continue;
            }
            Some((first_layer, first, _)) => {
                problems.push(Problem {
                    source: layers[*first_layer].source.to_string(),
                    error: PolicyError::Shadowed {
                        subject: subject(first, ""),
                        what,
                        by_source: source.to_string(),
                        by: doc.origin.clone(),
                    },
                    kept_last_good: false,
                });
            }
            None => {}
        }
        winners.insert(id, (layer, doc, value));
    }
    winners
        .into_iter()
        .map(|(id, (_, _, value))| (id, value))
        .collect()
}

/// A compile result and how long it took.
type Timed = (Result<CompiledTemplate, PolicyError>, Duration);

/// Compiles templates, results in document order. Parsing, analysis and RVM compilation
/// dominate a cold start and a reload, so templates that must be compiled are spread over as
/// many threads as the process may use. Templates that the precompiled artifact has a program
/// for are restored on this thread meanwhile: a restore takes about a tenth of a millisecond,
/// less than starting a thread, so a pack that is all precompiled starts no thread at all.
fn compile_templates(docs: &[&Document], options: BuildOptions) -> Vec<Timed> {
    let timed = |d: &Document| {
        let started = Instant::now();
        let result = compile_template(d, options);
        (result, started.elapsed())
    };
    let (restored, compiled): (Vec<usize>, Vec<usize>) =
        (0..docs.len()).partition(|&i| has_precompiled_program(docs[i], options));
    // Asked only when there is a choice: the answer reads the cgroup's CPU quota from three
    // files.
    let threads = match compiled.len() {
        0 | 1 => 1,
        n => std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(n),
    };
    if threads <= 1 {
        return docs.iter().map(|d| timed(d)).collect();
    }
    // Thread t compiles templates compiled[t], compiled[t + threads], ...
    let compiled = &compiled;
    let mut results: Vec<(usize, Timed)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    compiled
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|&i| (i, timed(docs[i])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut results: Vec<(usize, Timed)> =
            restored.iter().map(|&i| (i, timed(docs[i]))).collect();
        for handle in handles {
            results.extend(
                handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        results
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Whether the artifact holds a program under this template's name. Only the name is looked
/// at: a program for other Rego is refused later and the template compiled on this thread,
/// which is slower but gives the same result.
fn has_precompiled_program(doc: &Document, options: BuildOptions) -> bool {
    let name = doc.value["metadata"]["name"].as_str();
    options.evaluator == crate::rvm::Evaluator::Rvm
        && options
            .precompiled
            .zip(name)
            .is_some_and(|(artifact, name)| artifact.has_program_named(name))
}

fn compile_template(
    doc: &Document,
    options: BuildOptions,
) -> Result<CompiledTemplate, PolicyError> {
    let subj = subject(doc, "ConstraintTemplate");
    let template =
        ConstraintTemplate::from_value(&doc.value).map_err(|error| PolicyError::Invalid {
            subject: subj.clone(),
            error,
        })?;
    if let Some(bad) = template
        .parameters_schema
        .as_ref()
        .and_then(crate::schema::unsupported_type)
    {
        return Err(PolicyError::TemplateSchema {
            subject: subj,
            field: bad.field,
            crd_field: bad.crd_field,
            message: bad.message,
        });
    }
    // regorus's file names for the Rego it is given (see `compile`), to map its errors back.
    let mut sources = Vec::new();
    if let Some(code) = template.rego() {
        sources.push((format!("{}.rego", template.name), code.rego.clone()));
        for (i, lib) in code.libs.iter().enumerate() {
            sources.push((format!("{}/lib{i}.rego", template.name), lib.clone()));
        }
    }
    CompiledTemplate::compile_using(
        template,
        options.eval_budget,
        options.evaluator,
        options.precompiled,
    )
    .map_err(|f| {
        let message = match &doc.text {
            Some(text) => {
                let borrowed: Vec<(String, &str)> = sources
                    .iter()
                    .map(|(n, s)| (n.clone(), s.as_str()))
                    .collect();
                crate::source_map::to_yaml_location(
                    &f.message,
                    &doc.origin.file,
                    text,
                    doc.origin.line,
                    &borrowed,
                )
            }
            None => f.message,
        };
        PolicyError::Rego {
            subject: subj,
            field: f.field,
            message,
        }
    })
}
