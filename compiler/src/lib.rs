//! `mesh-compiler`: everything `meshc` does with `.mesh` files beyond parsing them —
//! finding them on disk, checking them and reporting what it found.

pub mod files;
pub mod report;
