"""`geotarget erase ...` and `geotarget consent log`: erasure and the consent change log."""

from __future__ import annotations

import typer

from ._app import app, console, engine, fail

consent_app = typer.Typer(help="Consent: the log of every opt-out and opt-in change.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")


@consent_app.command("log")
def consent_log(
    customer_id: str = typer.Option(None, "--id", metavar="ID", help="Only this customer's changes."),
    output: str = typer.Option(None, "-o", "--output", metavar="FILE", help="Write CSV here instead of printing."),
) -> None:
    """Show every consent change: customer, old and new value, the value read, source and time."""
    with engine() as eng:
        frame = eng.consent_log(customer_id)
    if output:
        frame.to_csv(output, index=False)
        console.print(f"wrote {len(frame):,} consent changes to {output}")
        return
    if frame.empty:
        console.print("no consent changes" + (f" for customer {customer_id!r}" if customer_id else ""))
        return
    for row in frame.itertuples(index=False):
        old = "-" if row.old_value is None or row.old_value != row.old_value else ("opted out" if row.old_value else "consenting")
        new = "opted out" if row.new_value else "consenting"
        console.print(f"{row.changed_at:%Y-%m-%d %H:%M:%S} {row.customer_id}: {old} -> {new} "
                      f"(value {row.raw_value!r}, from {row.source})", soft_wrap=True)


@app.command("erase")
def erase(
    customer_id: list[str] = typer.Option(None, "--id", metavar="ID", help="A customer id (repeatable)."),
    email: list[str] = typer.Option(None, "--email", metavar="EMAIL", help="An email or its SHA-256 (repeatable)."),
    phone: list[str] = typer.Option(None, "--phone", metavar="PHONE", help="A phone or its SHA-256 (repeatable)."),
    file: str = typer.Option(None, "--file", metavar="FILE",
                             help="A CSV of people to erase: columns id/customer_id, email and/or phone."),
    phone_region: str = typer.Option("US", "--phone-region", metavar="CC",
                                     help="Country of phone numbers without a country code."),
) -> None:
    """Forget people: remove them everywhere, keeping only a salted-hash tombstone that keeps them out."""
    ids, emails, phones = list(customer_id or []), list(email or []), list(phone or [])
    if file:
        from geotarget.store.suppression import read_people

        more = read_people(file)
        ids += more["id"]
        emails += more["email"]
        phones += more["phone"]
    if not (ids or emails or phones):
        fail("nothing to erase: pass --id, --email, --phone or --file")
    with engine() as eng:
        report = eng.erase(ids=ids, emails=emails, phones=phones, phone_region=phone_region)
    console.print(str(report))
