//! Checks shared by every quantizer's `read_sections`.

use vq_distance::Metric;
use vq_io::ContainerReader;

use crate::{Error, Result};

/// Fails unless each named section exists with the layout version this build reads.
pub(crate) fn check_versions(reader: &ContainerReader, expected: &[(&str, u32)]) -> Result<()> {
    for &(name, version) in expected {
        let found = reader.section(name)?.version;
        if found != version {
            return Err(corrupt(name, format!("section version {found}, this build reads {version}")));
        }
    }
    Ok(())
}

/// The metric a saved parameter section names.
pub(crate) fn metric(section: &str, name: &str) -> Result<Metric> {
    name.parse().map_err(|_| corrupt(section, format!("unknown metric {name:?}")))
}

/// [`Error::Corrupt`] for `section`.
pub(crate) fn corrupt(section: &str, what: String) -> Error {
    Error::Corrupt { section: section.into(), what }
}
