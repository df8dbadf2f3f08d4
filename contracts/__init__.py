"""The messages callguard reads and writes, and how they are checked.

- :mod:`contracts.cdr`: the call detail record, its fields and the JSON
  validation of one record; :mod:`contracts.cdr_json`,
  :mod:`contracts.cdr_arrow` and :mod:`contracts.cdr_vector` validate whole
  batches (JSON lines, Arrow IPC) column by column to the same rules.
- :mod:`contracts.complaints`: a subscriber's complaint about a number.
- :mod:`contracts.numbers`: phone number normalisation (E.164), shared by
  every contract that carries a number.
- :mod:`contracts.by_caller`: the internal ``cdr.by_caller`` message, one
  partition's calls, inbound notes, complaints and operators' actions.
- :mod:`contracts.flag`: the flag record published on the flag topic and
  stored in ClickHouse; its JSON Schema is ``contracts/schemas/flag.schema.json``.

Contracts import nothing else of callguard's (only the standard library,
third-party packages and each other), so every stage, sink, model and the
simulator can depend on them without depending on one another.
"""
