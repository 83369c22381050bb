"""What the two Outlook back-ends (Graph, EWS) share: streams, incident rule, writes."""
