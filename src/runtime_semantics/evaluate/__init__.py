"""The cross-runtime evaluation matrix: {base, trained-persistent, trained-stateless} x
{persistent, stateless runtime} x {easy, hard}, one result file per episode."""
