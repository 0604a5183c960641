//! Source specifications (PLACEHOLDER).

/// Which source to open and how.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {}
