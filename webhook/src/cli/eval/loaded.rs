//! `eval` with every input held: all documents are read, checked and placed, the policies
//! built, and every object synced into `data.inventory` before the first review, as
//! `gator test` does. Needed when a constraint's template reads the inventory, and the one
//! path that reports bad inputs: [`super::streamed`] hands those runs here.
//!
//! Reviews run on worker threads; what they print, and the first error, come in input order.

use std::ops::ControlFlow;

use anyhow::Context as _;
use tollgate_engine::{DataSnapshot, Sources};

use super::inputs::{self, Input, Subject};
use super::report::{self, Report};
use super::scope::Placement;
use super::{Settings, ordered};

/// Reads, checks and reviews everything; fails on the first bad input, policy or review.
pub fn run(settings: &Settings, inputs: &[Input]) -> anyhow::Result<Report> {
    let mut read = Sources::default();
    for input in inputs {
        read.add(inputs::read(input)?);
    }
    let placement = Placement::new(settings.namespace.clone(), &read.objects);
    let subjects = std::mem::take(&mut read.objects)
        .into_iter()
        .map(|doc| Subject::of(doc, &placement))
        .collect::<Result<Vec<_>, _>>()?;
    let (set, warnings) = settings.build(settings.policy_sources()?, &read)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    // Every input object is synced, as `gator test` does; `data.inventory` is only built if a
    // template reads it. An AdmissionReview is a request, not cluster state: not synced.
    let mut data = DataSnapshot::default();
    for subject in &subjects {
        if let Subject::Object(doc) = subject {
            data.sync(doc.value.clone())
                .with_context(|| doc.origin.to_string())?;
        }
    }
    super::add_default_namespace(&mut data);
    let ctx = settings.context(&data);
    let mut report = Report::default().constraints_of(&set);
    let mut failure = None;
    // Taken one by one: each object moves into its review, and is freed after it.
    ordered::for_each(
        subjects.into_iter(),
        settings.jobs,
        |subject| report::review(&set, &ctx, subject, settings.rendering),
        |reviewed| match reviewed {
            Ok(reviewed) => {
                for line in reviewed.prints() {
                    eprintln!("{line}");
                }
                report.add_printed(reviewed);
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        },
    );
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}
