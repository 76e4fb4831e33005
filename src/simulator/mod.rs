//! EVE simulator.
