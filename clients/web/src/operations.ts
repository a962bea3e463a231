import { graphql } from './gql';

// Every operation the app sends. `npm run codegen` reads these and ../../schema.graphql and
// writes typed documents to src/gql/, so results and variables below are fully typed.

/** What every payload's `userErrors` is rendered from: code, message, field, and the details. */
export const UserErrorFields = graphql(`
  fragment UserErrorFields on UserError {
    __typename
    code
    message
    field
    ... on OutOfStockError {
      productId
      requested
      available
      alternatives(limit: 3) { id name stock }
    }
    ... on InsufficientBalanceError { balance required }
    ... on BalanceLimitError { balance maxBalance }
  }
`);

export const MeQuery = graphql(`
  query Me {
    me { id name role balance }
  }
`);

export const ProductsQuery = graphql(`
  query Products($first: Int!) {
    products(first: $first) {
      totalCount
      nodes { id name category price stock }
      pageInfo { hasNextPage }
    }
  }
`);

export const ChargeBalanceMutation = graphql(`
  mutation ChargeBalance($input: ChargeBalanceInput!) {
    chargeBalance(input: $input) {
      balance
      entry { id kind amount balanceAfter }
      viewer { id balance }
      userErrors { ...UserErrorFields }
    }
  }
`);

export const PlaceOrderMutation = graphql(`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      order {
        id
        status
        subtotal
        discount
        total
        items { quantity unitPrice lineTotal product { id name stock } }
      }
      viewer { id balance }
      userErrors { ...UserErrorFields }
    }
  }
`);

export const StockChangedSubscription = graphql(`
  subscription StockChanged {
    stockChanged { stock product { id } }
  }
`);

export const RankingChangedSubscription = graphql(`
  subscription RankingChanged($days: Int!, $limit: Int!) {
    rankingChanged(days: $days, limit: $limit) {
      topSellers {
        days
        from
        to
        computedAt
        entries { rank quantity revenue product { id name } }
      }
      changes { rank previousRank movement product { id name } }
    }
  }
`);
