//! A client for the Rabid hole-punch protocol (work in progress).
