import './proto/src/polyfill.js'
