"""What proposes candidates: pools, substitution, validity and de-duplication, inverse design."""
