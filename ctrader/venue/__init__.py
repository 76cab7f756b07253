"""Binance Spot venue rules shared by the engine and the simulator.

Exact decimal strings (``decimals``), exchangeInfo filters with Binance's error codes
(``filters``), commission math (``fees``), request signing and verification (``signing``) and the
error catalogue (``errors``). Nothing here knows about trading strategy or about the simulator's
market model: both sides import these so that they cannot disagree on what the venue accepts.
"""
