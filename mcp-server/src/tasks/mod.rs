//! Tasks: parsing requests ([`commands`]), storage ([`row`]), listing ([`list`]) and the
//! operations the tools call ([`service`]).

pub mod commands;
pub mod list;
pub mod row;
pub mod service;
