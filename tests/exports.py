"""Plain CSV export folders for end-to-end tests, small and predictable."""

from __future__ import annotations

import csv
from pathlib import Path

CUSTOMER_HEADER = ["id", "name", "email", "phone", "created_at"]
TRANSACTION_HEADER = ["id", "customer_id", "date", "amount", "currency", "kind"]


def write_exports(folder: Path, customers: int, transactions: int) -> Path:
    """``customers`` people (every tenth shares a phone with the previous one) and
    ``transactions`` sales spread over them; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "customers.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CUSTOMER_HEADER)
        for number in range(customers):
            phone_owner = number - 1 if number % 10 == 9 else number
            writer.writerow(
                [
                    f"C{number:06d}",
                    f"Person {number}",
                    f"person{number}@example.com",
                    f"+1 415 555 {phone_owner % 10000:04d}",
                    "2023-01-01",
                ]
            )
    with (folder / "transactions.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRANSACTION_HEADER)
        for number in range(transactions):
            writer.writerow(
                [
                    f"T{number:07d}",
                    f"C{number % max(customers, 1):06d}",
                    f"2024-{number % 12 + 1:02d}-{number % 28 + 1:02d}",
                    f"{(number % 500) + 1}.{number % 100:02d}",
                    "USD",
                    "refund" if number % 20 == 19 else "sale",
                ]
            )
    return folder
