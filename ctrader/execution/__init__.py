"""The executor: intents in, risk gate, paper or live venue, exec events out.

    engine.Executor          the whole executor as one object (no rings; tests, single process)
    process.run_executor     the run component: rings <-> Executor (ExecutorLoop), stats, health
    risk                     RiskGate, RiskLimits, RateBudget, KillSwitch
    paper                    PaperFillModel (pure; replay reuses it) and PaperVenue
    live / ws_api_client     LiveVenue over Binance's WebSocket API (REST fallback), reconciliation
    orders                   Order, VenueUpdate, OrderBook (the state machine), exec_record
    journal                  write-ahead journal (JSON lines, fdatasync before sending)
    accounting               positions, fees, PnL at mid (Valuer), latency, counters
"""
