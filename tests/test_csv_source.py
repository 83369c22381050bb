"""The CSV source's optional columns: lists, flags, directions and the sale details."""

from __future__ import annotations

from pathlib import Path

from connectors.csv.streams import FILES, CsvSettings, CsvStream
from connectors.records import Direction, SourceCustomer, SourceInteraction, SourceTransaction


def read(folder: Path, stream: str, text: str) -> tuple[list[object], list[str]]:
    (folder / f"{stream}.csv").write_text(text, encoding="utf-8")
    spec = next(spec for spec in FILES if spec.stream == stream)
    settings = CsvSettings(folder, 100, ",", "utf-8", None, "USD")
    pages = list(CsvStream(spec, settings, {}).pages({}))
    return [r for p in pages for r in p.records], [x.reason for p in pages for x in p.rejected]


def test_customer_labels_notes_and_channel(tmp_path: Path) -> None:
    records, rejected = read(
        tmp_path,
        "customers",
        "id,name,labels,notes,channel,parent_id\nC1,Ann,VIP; wholesale ;,likes tea,ads,C0\n",
    )

    assert rejected == []
    assert records == [
        SourceCustomer(
            "C1",
            name="Ann",
            labels=("VIP", "wholesale"),
            notes="likes tea",
            acquisition_channel="ads",
            parent_external_id="C0",
        )
    ]


def test_sale_details_are_read(tmp_path: Path) -> None:
    records, _ = read(
        tmp_path,
        "transactions",
        "id,customer_id,date,amount,kind,reference,memo,discount,refund_of,channel\n"
        "R1,C1,2024-05-02,5.00,refund,#1001,shop order,0.50,S1,web\n",
    )

    (refund,) = records
    assert isinstance(refund, SourceTransaction)
    assert (refund.reference, refund.memo, refund.refund_of, refund.channel) == (
        "#1001",
        "shop order",
        "S1",
        "web",
    )
    assert str(refund.discount) == "0.50"


def test_interaction_flags_and_directions_are_checked(tmp_path: Path) -> None:
    records, rejected = read(
        tmp_path,
        "interactions",
        "id,customer_id,date,kind,direction,conversation_id,support\n"
        "I1,C1,2024-05-02,email,Inbound,conv-1,yes\n"
        "I2,C1,2024-05-03,email,sideways,conv-1,no\n"
        "I3,C1,2024-05-04,email,outbound,conv-1,maybe\n",
    )

    assert records == [
        SourceInteraction(
            "I1",
            "C1",
            records[0].occurred_at,  # type: ignore[attr-defined]
            "email",
            direction=Direction.INBOUND,
            conversation_id="conv-1",
            support=True,
        )
    ]
    assert [reason.split(" is ")[0] for reason in rejected] == [
        "direction 'sideways'",
        "support 'maybe'",
    ]
