//! What one script answered on one backend: every answer is recorded, most are checked
//! against a concrete expectation as they come, and two backends' transcripts must match.

use std::fmt::Debug;
use voicemon_store::Store;

#[derive(Debug)]
pub struct Transcript {
    backend: &'static str,
    lines: Vec<String>,
}

impl Transcript {
    pub fn of(store: &dyn Store) -> Transcript {
        Transcript { backend: store.backend(), lines: Vec::new() }
    }

    /// Asserts an answer and records it.
    #[track_caller]
    pub fn check<T: PartialEq + Debug>(&mut self, what: &str, answer: T, expected: T) {
        assert_eq!(answer, expected, "{}: {what}", self.backend);
        self.note(what, answer);
    }

    /// Records an answer checked some other way (or only compared across backends).
    pub fn note(&mut self, what: &str, answer: impl Debug) {
        self.lines.push(format!("{what}: {answer:?}"));
    }

    /// Fails at the first answer where the two backends differ.
    #[track_caller]
    pub fn assert_same_as(&self, other: &Transcript) {
        for (mine, theirs) in self.lines.iter().zip(&other.lines) {
            assert_eq!(mine, theirs, "{} and {} answer differently", self.backend, other.backend);
        }
        assert_eq!(
            self.lines.len(),
            other.lines.len(),
            "{} and {} gave a different number of answers",
            self.backend,
            other.backend
        );
    }
}
