"""SLA contracts: what each customer was promised, measured as their contract says,
and what is owed when the promise is missed."""
